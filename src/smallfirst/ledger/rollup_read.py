"""Totals over a time window, read from the rollups (raw rows only at partial-minute edges).

A window [since, until) is split into whole UTC days (daily rollups), then whole hours, quarter
hours and minutes towards its edges, and the seconds before the first / after the last whole minute
(raw request rows and their hops, aggregated in Python exactly as the writer does). The
answer is the same as aggregating every raw row of the window, at a cost that depends on the
window's length and the number of groups, not on the traffic. Once raw rows are pruned, the
partial minutes at the edges of a window that old have nothing left to read; whole minutes
and longer buckets still count.

Works with only an engine (the dashboard's case): the tables are named, not reflected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Integer,
    String,
    and_,
    column,
    func,
    or_,
    select,
    table,
)
from sqlalchemy.sql.expression import TableClause

from smallfirst.ledger import route_rollups, task_rollups
from smallfirst.ledger.rollups import (
    AMOUNTS,
    CACHE_COUNTS,
    COUNTS,
    DIMENSIONS,
    GRANULARITIES,
    LATENCY,
    LOOKUP_CHUNK,
    MEASURES,
    ROW_COLUMNS,
    TTFT,
    Totals,
    hop_totals,
    request_totals,
)

MINUTE = GRANULARITIES[0]
ROLLUPS = table(
    "rollups",
    column("bucket_s", Integer),
    column("bucket", Integer),
    *(column(name, String) for name in DIMENSIONS[:-1]),
    column("status_class", Integer),
    *(column(name, Integer) for name in (*COUNTS, *LATENCY, *TTFT)),
    *(column(name, Float) for name in AMOUNTS),
)
REQUESTS = table(
    "requests",
    *(column(name) for name in (*ROW_COLUMNS, *CACHE_COUNTS, "requested_model", "outcome")),
    column("id"),
)
Q = REQUESTS.c


@dataclass(frozen=True, slots=True)
class Source:
    """A rollup table and the measures it holds."""

    table: TableClause
    measures: tuple[str, ...]
    histograms: bool


MAIN = Source(ROLLUPS, (*COUNTS, *AMOUNTS), True)
TASKS = Source(
    table(
        task_rollups.TABLE,
        column("bucket_s", Integer),
        column("bucket", Integer),
        *(column(name, String) for name in task_rollups.DIMENSIONS[:-1]),
        column("status_class", Integer),
        column("requests", Integer),
        *(column(name, Float) for name in task_rollups.MEASURES[1:]),
    ),
    task_rollups.MEASURES,
    False,
)
"""Requests, $ and baseline $ by key, task and tier (`task_rollups.py`)."""
ROUTES = Source(
    table(
        route_rollups.TABLE,
        column("bucket_s", Integer),
        column("bucket", Integer),
        *(column(name, String) for name in route_rollups.DIMENSIONS[:-1]),
        column("status_class", Integer),
        column("requests", Integer),
        column("cache_hits", Integer),
        column("cache_saved_usd", Float),
    ),
    route_rollups.MEASURES,
    False,
)
"""Requests and response-cache hits (with the $ they saved) by endpoint and requested model
(`route_rollups.py`)."""
Span = tuple[float | None, float | None]
"""[low, high) in unix seconds; None is unbounded."""


@dataclass(frozen=True, slots=True)
class Series:
    """Bucket results by `(bucket start - origin) // step` (a chart's x axis)."""

    origin: int
    step: int


GroupKey = tuple[Any, ...]
"""(series index if asked for, *the `by` dimensions, status class)."""


def read(
    conn: Connection,
    since: float | None,
    until: float | None,
    by: Sequence[str] = (),
    *,
    key_id: str | None = None,
    series: Series | None = None,
    histograms: bool = True,
    source: Source = MAIN,
) -> dict[GroupKey, Totals]:
    """Totals of the request rows with `since <= ts < until` (and of `key_id`), grouped by
    the `by` dimensions and the status class (2, 4, 5 for 2xx, 4xx, 5xx). From `TASKS`, only
    requests, $ and baseline $ are filled in (`by` among key_id, task and tier); from
    `ROUTES`, only requests, cache hits and their $ saved (`by` among endpoint and
    requested_model, no `key_id`). Cache hits are filled in from `ROUTES` alone."""
    grains = [
        step
        for step in GRANULARITIES
        if series is None or (series.step % step == 0 and series.origin % step == 0)
    ]
    out: dict[GroupKey, Totals] = defaultdict(Totals)
    tiles = _tile(since, until, grains)
    buckets = [(step, low, high) for step, low, high in tiles if step is not None]
    histograms = histograms and source.histograms
    pieces = _rollups(conn, source, buckets, by, key_id, series, histograms) if buckets else []
    hits = "cache_hits" in source.measures
    for _, low, high in (tile for tile in tiles if tile[0] is None):
        pieces += _raw(conn, low, high, by, key_id, series, hits)
    for key, totals in pieces:
        out[key].add(totals)
    return dict(out)


def _tile(
    since: float | None, until: float | None, grains: list[int]
) -> list[tuple[int | None, float | None, float | None]]:
    """(granularity, low, high) pieces that tile [since, until): whole buckets of the coarsest
    granularity in the middle, finer ones towards the edges, raw rows (None) for the seconds
    before the first / after the last whole minute."""
    if not grains:
        return [(None, since, until)] if since is None or until is None or since < until else []
    step, finer = grains[-1], grains[:-1]
    low = None if since is None else math.ceil(since / step) * step
    high = None if until is None else math.floor(until / step) * step
    if low is not None and high is not None and low >= high:
        return _tile(since, until, finer)
    pieces: list[tuple[int | None, float | None, float | None]] = [(step, low, high)]
    if since is not None and low is not None and since < low:
        pieces += _tile(since, low, finer)
    if until is not None and high is not None and high < until:
        pieces += _tile(high, until, finer)
    return pieces


def _between(col: ColumnElement[Any], low: float | None, high: float | None) -> ColumnElement:
    terms = []
    if low is not None:
        terms.append(col >= low)
    if high is not None:
        terms.append(col < high)
    return and_(*terms) if terms else col.is_not(None)


def _rollups(
    conn: Connection,
    source: Source,
    buckets: list[tuple[int, float | None, float | None]],
    by: Sequence[str],
    key_id: str | None,
    series: Series | None,
    histograms: bool,
) -> list[tuple[GroupKey, Totals]]:
    """One query for every (granularity, low, high) piece: an OR of index range scans."""
    R = source.table.c
    groups: list[ColumnElement[Any]] = [R[name] for name in (*by, "status_class")]
    if series is not None:
        groups.insert(0, ((R.bucket - series.origin) // series.step).label("index"))
    measures = MEASURES if histograms else source.measures
    where = [
        or_(*(and_(R.bucket_s == step, _between(R.bucket, lo, hi)) for step, lo, hi in buckets))
    ]
    if key_id is not None:
        where.append(R.key_id == key_id)
    query = (
        select(*groups, *(func.sum(R[name]).label(name) for name in measures))
        .where(*where)
        .group_by(*groups)
    )
    out = []
    for row in conn.execute(query).mappings():
        key = tuple(row[g.name] for g in groups)
        key = tuple(None if value == "" else value for value in key)
        out.append((key, Totals.from_values(row)))
    return out


def _raw(
    conn: Connection,
    low: float | None,
    high: float | None,
    by: Sequence[str],
    key_id: str | None,
    series: Series | None,
    hits: bool,
) -> list[tuple[GroupKey, Totals]]:
    """The request rows of a partial minute, with their hops, aggregated like the writer
    (and their cache hits counted when `hits`, as the route rollups count them)."""
    where = [Q.kind == "request", _between(Q.ts, low, high)]
    if key_id is not None:
        where.append(Q.key_id == key_id)
    requests = [dict(r) for r in conn.execute(select(REQUESTS).where(*where)).mappings()]
    hops = _hops(conn, [r["request_id"] for r in requests])
    out = []
    for request in requests:
        totals = request_totals(request)
        totals.add(hop_totals(hops.get(request["request_id"], [])))
        if hits and request["outcome"] == route_rollups.HIT:
            totals.cache_hits, totals.cache_saved_usd = 1, totals.baseline_cost_usd
        key: GroupKey = (*(request[name] for name in by), int(request["status"]) // 100)
        if series is not None:
            key = (int((request["ts"] - series.origin) // series.step), *key)
        out.append((key, totals))
    return out


def _hops(conn: Connection, request_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for start in range(0, len(request_ids), LOOKUP_CHUNK):
        chunk = request_ids[start : start + LOOKUP_CHUNK]
        query = select(Q.request_id, Q.hop, Q.step, Q.cost_usd).where(
            Q.kind == "hop", Q.request_id.in_(chunk)
        )
        for row in conn.execute(query).mappings():
            grouped[row["request_id"]].append(dict(row))
    return grouped


def total(groups: dict[GroupKey, Totals]) -> Totals:
    """Every group added up."""
    out = Totals()
    for totals in groups.values():
        out.add(totals)
    return out


def earliest_bucket(conn: Connection) -> float | None:
    """Start of the oldest minute in the rollups (older than any raw row once pruned)."""
    R = ROLLUPS.c
    value = conn.execute(select(func.min(R.bucket)).where(R.bucket_s == MINUTE)).scalar()
    return None if value is None else float(value)


def first_hours(
    conn: Connection, by: str, *, key_id: str | None = None, source: Source = MAIN
) -> dict[Any, float]:
    """Per value of the dimension `by` (values other than none), the start of the first hour
    with a request in the rollups: when its traffic began, to the hour, from one row per
    hour and group rather than every request."""
    R = source.table.c
    query = select(R[by], func.min(R.bucket)).where(R.bucket_s == 3600, R[by] != "").group_by(R[by])
    if key_id is not None:
        query = query.where(R.key_id == key_id)
    return {value: float(first) for value, first in conn.execute(query)}
