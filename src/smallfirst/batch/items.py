"""Reading batch inputs (JSONL, CSV, Parquet, OpenAI Batch files) and writing outputs.

Every input row becomes an `Item` with its position (`seq`), its line or row number in the file,
an id and a digest of its content (what the journal compares on a resume); a row that cannot be
used becomes a `Rejected` with the reason, so the run carries on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequestError

FORMATS = ("jsonl", "csv", "parquet")


@dataclass(slots=True)
class Item:
    seq: int
    id: str
    data: dict[str, Any]
    line: int
    """Line (JSONL) or row (CSV, Parquet; a CSV header is row 1) number in the file."""
    digest: bytes
    """Of the line's raw bytes (JSONL) or the row's values: what a resume compares."""


@dataclass(slots=True)
class Rejected:
    seq: int
    id: str
    reason: str
    raw: str
    line: int
    digest: bytes


UNDECODED = re.compile("[\udc80-\udcff]")
"""What `surrogateescape` turns bytes that are not UTF-8 into."""


def digest_of(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def position_noun(path: Path) -> str:
    """How an error names a place in the file: `line` for JSONL, `row` for a table."""
    return "line" if format_of(path) == "jsonl" else "row"


def format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise InvalidRequestError(
        f"{path}: unknown file type {path.suffix!r}; use .jsonl, .csv or .parquet"
    )


def is_openai_batch(data: dict[str, Any]) -> bool:
    return data.get("custom_id") not in (None, "") and isinstance(data.get("body"), dict)


def read_items(path: Path) -> Iterator[Item | Rejected]:
    if not path.is_file():
        raise InvalidRequestError(f"input file {path} does not exist")
    kind = format_of(path)
    if kind == "jsonl":
        yield from _read_jsonl(path)
    elif kind == "csv":
        yield from _read_csv(path)
    else:
        yield from _read_parquet(path)


def count_rows(path: Path) -> int:
    kind = format_of(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines - 1 if kind == "csv" else lines


def _item_id(data: dict[str, Any], seq: int) -> str:
    for key in ("custom_id", "id"):
        if data.get(key) not in (None, ""):
            return str(data[key])
    return str(seq)


def _read_jsonl(path: Path) -> Iterator[Item | Rejected]:
    seq = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            raw = raw.rstrip(b"\r\n")
            yield _jsonl_entry(seq, number, raw, digest_of(raw))
            seq += 1


def _jsonl_entry(seq: int, number: int, raw: bytes, digest: bytes) -> Item | Rejected:
    """A JSONL line is UTF-8 text holding one JSON object; anything else is rejected."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"line {number}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        shown = raw.decode("utf-8", errors="backslashreplace")
        return Rejected(seq, str(seq), reason, shown, number, digest)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = f"line {number}: not valid JSON ({exc})"
        return Rejected(seq, str(seq), reason, text, number, digest)
    if not isinstance(data, dict):
        return Rejected(seq, str(seq), f"line {number}: not a JSON object", text, number, digest)
    return Item(seq, _item_id(data, seq), data, number, digest)


def _read_csv(path: Path) -> Iterator[Item | Rejected]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        for seq, row in enumerate(csv.DictReader(handle)):
            number = seq + 2
            digest = digest_of(json.dumps(row).encode())
            if None in row:
                reason = f"row {number}: more fields than the header"
                yield Rejected(seq, str(seq), reason, _shown(row), number, digest)
            elif any(UNDECODED.search(value or "") for value in row.values()):
                reason = f"row {number}: not UTF-8 text"
                yield Rejected(seq, str(seq), reason, _shown(row), number, digest)
            else:
                yield Item(seq, _item_id(row, seq), dict(row), number, digest)


def _shown(row: dict[Any, Any]) -> str:
    return str(row).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _read_parquet(path: Path) -> Iterator[Item | Rejected]:
    import pyarrow.parquet as pq

    seq = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            digest = digest_of(json.dumps(row, sort_keys=True, default=str).encode())
            yield Item(seq, _item_id(row, seq), row, seq + 1, digest)
            seq += 1


def write_rows(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    """Write atomically: a run killed while writing leaves the previous file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    kind = format_of(path)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = [_flat(row) for row in rows]
        pq.write_table(pa.Table.from_pylist(data), tmp)
        count = len(data)
    elif kind == "csv":
        count = _write_csv(tmp, rows)
    else:
        count = 0
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    os.replace(tmp, path)
    return count


def _write_csv(tmp: Path, rows: Iterator[dict[str, Any]]) -> int:
    flat = [_flat(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns.extend(key for key in row if key not in columns)
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or ["id"])
        writer.writeheader()
        writer.writerows(flat)
    return len(flat)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """Nested values become JSON text so CSV and Parquet columns stay scalar."""
    return {
        key: json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        for key, value in row.items()
    }
