"""Read the unlabelled inputs a teacher is asked to label."""

from __future__ import annotations

import json
from pathlib import Path

from smallfirst.errors import InvalidRequestError

INPUT_KEYS = ("input", "text")


def read_inputs(path: str | Path) -> list[str]:
    """One input per JSONL line: a JSON string, or an object with `input` (or `text`).

    A bad line is an error naming the line, not a skipped row: a silently shorter training set
    is worse than a clear stop.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"inputs file {path} does not exist", param="inputs")
    texts: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                texts.append(_parse_line(line, f"{path}:{number}"))
    if not texts:
        raise InvalidRequestError(f"inputs file {path} has no inputs", param="inputs")
    return texts


def _parse_line(line: str, where: str) -> str:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: not valid JSON ({exc})", param="inputs") from None
    if isinstance(value, dict):
        value = next((value[k] for k in INPUT_KEYS if k in value), None)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(
            f"{where}: expected a JSON string or an object with a non-empty "
            f"{' or '.join(repr(k) for k in INPUT_KEYS)} string",
            param="inputs",
        )
    return value
