"""Task rollups: request rows that name a task, pre-aggregated per minute, quarter hour, hour
and day × key × task × tier × status class, holding requests, $ and baseline $.

What `smallfirst tasks`, the report's and the dashboard's Tasks panel read (through
`rollup_read.read(..., source=TASKS)`), so they cost the same at 10 thousand or 10 million
requests and outlive the raw rows retention deletes. A table of its own rather than a
dimension of `rollups`: tasks multiply the groups, and every other panel reads those (six
tasks spread over a ledger's traffic made its hourly rollup rows 2.6x as many). Only request
rows count (a request's $ is on its row), so no hop ever changes a task rollup and the writer
adds them without looking anything up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    select,
)

from smallfirst.ledger import rollups
from smallfirst.ledger.rollups import GRANULARITIES, Increments

TABLE = "task_rollups"
DIMENSIONS = ("key_id", "task", "tier", "status_class")
KEY_COLUMNS = ("bucket_s", "bucket", *DIMENSIONS)
MEASURES = ("requests", "cost_usd", "baseline_cost_usd")


def table(metadata: MetaData) -> Table:
    return Table(
        TABLE,
        metadata,
        Column("bucket_s", Integer, nullable=False),
        Column("bucket", BigInteger, nullable=False),
        Column("key_id", String(200), nullable=False),
        Column("task", String(200), nullable=False),
        Column("tier", String(200), nullable=False),
        Column("status_class", Integer, nullable=False),
        Column("requests", BigInteger, nullable=False),
        Column("cost_usd", Float, nullable=False),
        Column("baseline_cost_usd", Float, nullable=False),
        UniqueConstraint(*KEY_COLUMNS, name="task_rollups_group"),
    )


def increments(rows: Iterable[dict[str, Any]]) -> Increments:
    """What the request rows among `rows` that name a task add, per (granularity, bucket,
    key, task, tier, status class)."""
    groups: Increments = {}
    for row in rows:
        task = row.get("task")
        if task is None or row["kind"] != "request":
            continue
        ts, dims = row["ts"], (row.get("key_id"), task, row.get("tier"), int(row["status"]) // 100)
        cost, baseline = row["cost_usd"] or 0.0, row["baseline_cost_usd"] or 0.0
        for step in GRANULARITIES:
            key = (step, math.floor(ts / step) * step, *dims)
            slot = groups.get(key)
            if slot is None:
                groups[key] = [1, cost, baseline]
            else:
                slot[0] += 1
                slot[1] += cost
                slot[2] += baseline
    return groups


def upsert(conn: Connection, task_rollups: Table, groups: Increments) -> None:
    rollups.upsert(conn, task_rollups, groups, KEY_COLUMNS, MEASURES)


def build(conn: Connection, requests: Table, task_rollups: Table) -> None:
    """From the raw request rows that name a task (the migration that adds the table)."""
    columns = [requests.c[name] for name in ("kind", "ts", "key_id", "task", "tier", "status")]
    money = [requests.c.cost_usd, requests.c.baseline_cost_usd]
    query = select(*columns, *money).where(
        requests.c.kind == "request", requests.c.task.is_not(None)
    )
    for rows in rollups.in_chunks(conn, query):
        upsert(conn, task_rollups, increments(rows))
