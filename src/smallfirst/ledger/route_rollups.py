"""Route rollups: request rows pre-aggregated per minute, quarter hour, hour and day × endpoint
× requested model (the route a client named) × status class, holding requests, response-cache
hits (outcome `cache`) and the $ those hits saved (their baseline cost: a hit costs $0).

What the report's cache summary reads (through `rollup_read.read(..., source=ROUTES)`), so it
costs the same at 10 thousand or 10 million requests and outlives the raw rows retention
deletes. A table of its own rather than a dimension of `rollups`, as `task_rollups` is: the
route a client asked for is not the router or the model that served it, and adding it to every
group would multiply the rows every other panel reads. Only request rows count (a hit is
decided on its request row), so no hop ever changes a route rollup and the writer adds them
without looking anything up.
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
from smallfirst.ledger.rollups import MINUTE, Increments

TABLE = "route_rollups"
DIMENSIONS = ("endpoint", "requested_model", "status_class")
KEY_COLUMNS = ("bucket_s", "bucket", *DIMENSIONS)
MEASURES = ("requests", "cache_hits", "cache_saved_usd")
HIT = "cache"
"""The outcome of a request the response cache answered (smallfirst/cache/gateway.py)."""


def table(metadata: MetaData) -> Table:
    return Table(
        TABLE,
        metadata,
        Column("bucket_s", Integer, nullable=False),
        Column("bucket", BigInteger, nullable=False),
        Column("endpoint", String(200), nullable=False),
        Column("requested_model", String(200), nullable=False),
        Column("status_class", Integer, nullable=False),
        Column("requests", BigInteger, nullable=False),
        Column("cache_hits", BigInteger, nullable=False),
        Column("cache_saved_usd", Float, nullable=False),
        UniqueConstraint(*KEY_COLUMNS, name="route_rollups_group"),
    )


def increments(rows: Iterable[dict[str, Any]]) -> Increments:
    """What the request rows among `rows` add, per (granularity, bucket, endpoint, requested
    model, status class): summed per minute, then the minutes into the coarser buckets."""
    minutes: Increments = {}
    for row in rows:
        if row["kind"] != "request":
            continue
        get = row.get
        key = (
            MINUTE,
            math.floor(row["ts"] / MINUTE) * MINUTE,
            row["endpoint"],
            get("requested_model"),
            int(row["status"]) // 100,
        )
        hit = get("outcome") == HIT
        saved = (row["baseline_cost_usd"] or 0.0) if hit else 0.0
        slot = minutes.get(key)
        if slot is None:
            minutes[key] = [1, int(hit), saved]
        else:
            slot[0] += 1
            slot[1] += hit
            slot[2] += saved
    return rollups.coarsen(minutes)


def upsert(conn: Connection, route_rollups: Table, groups: Increments) -> None:
    rollups.upsert(conn, route_rollups, groups, KEY_COLUMNS, MEASURES)


def build(conn: Connection, requests: Table, route_rollups: Table) -> None:
    """From the raw request rows still stored (the migration that adds the table)."""
    names = ("kind", "ts", "endpoint", "requested_model", "status", "outcome", "baseline_cost_usd")
    query = select(*(requests.c[name] for name in names)).where(requests.c.kind == "request")
    for rows in rollups.in_chunks(conn, query):
        upsert(conn, route_rollups, increments(rows))
