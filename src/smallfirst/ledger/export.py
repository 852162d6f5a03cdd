"""Raw ledger rows out to JSON Lines or Parquet, for DuckDB, pandas or a warehouse.

Rows are streamed from the database (`yield_per`) in chunks of EXPORT_CHUNK and written as
they come, one Parquet row group per chunk, so memory stays bounded by one chunk however big
the ledger is. Columns and types follow the `requests` table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Boolean, Float, Integer, Table, select

from smallfirst.ledger.store import LedgerStore

Format = Literal["jsonl", "parquet"]
FORMATS: tuple[Format, ...] = ("jsonl", "parquet")
EXPORT_CHUNK = 10_000


def arrow_schema(table: Table) -> pa.Schema:
    def arrow_type(column: Any) -> pa.DataType:
        if isinstance(column.type, Boolean):
            return pa.bool_()
        if isinstance(column.type, Integer):
            return pa.int64()
        if isinstance(column.type, Float):
            return pa.float64()
        return pa.string()

    return pa.schema([pa.field(c.name, arrow_type(c), nullable=True) for c in table.columns])


def chunks(
    store: LedgerStore, since: float | None = None, until: float | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The rows with `since <= ts < until`, in id order, EXPORT_CHUNK at a time."""
    table = store.requests
    query = select(table).order_by(table.c.id)
    if since is not None:
        query = query.where(table.c.ts >= since)
    if until is not None:
        query = query.where(table.c.ts < until)
    with store.engine.connect() as conn:
        result = conn.execute(query.execution_options(yield_per=EXPORT_CHUNK))
        for partition in result.mappings().partitions():
            yield [dict(row) for row in partition]


def export_jsonl(store: LedgerStore, out: IO[str], **window: float | None) -> int:
    count = 0
    for rows in chunks(store, **window):
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        count += len(rows)
    return count


def export_parquet(store: LedgerStore, path: Path, **window: float | None) -> int:
    schema = arrow_schema(store.requests)
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for rows in chunks(store, **window):
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    return count
