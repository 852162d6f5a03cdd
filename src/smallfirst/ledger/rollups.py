"""Rollups: the ledger's request rows pre-aggregated per minute, quarter hour, hour and day.

One rollup row per (granularity, bucket start, endpoint, key, model, tier, route, status class)
holds counts (requests, tokens, escalated requests, hops), sums ($, baseline $, $ spent after
an escalation) and latency + TTFT as counts in fixed log-spaced buckets, so totals and
percentiles over any window come from a few thousand rollup rows instead of every request.

The writer calls `apply_batch` in the same transaction as the raw insert, so a rolled-back
commit rolls back both. Only `request` rows create rollup rows; their hop rows (which may be
flushed before or after them, in another batch) add to the request row's group: escalated
(at least one `escalate` hop), escalation $ (hops after the first `escalate`) and hop count.
Each batch is aggregated in Python first (one upsert per group) and the rows already stored
for the batch's request ids are read, so a late hop updates its request's group exactly once.

Dimensions are stored NOT NULL, with '' for None: unique indexes treat NULLs as distinct,
which would defeat `ON CONFLICT`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, select, update

GRANULARITIES = (60, 900, 3600, 86400)
"""Bucket sizes kept, finest first: minutes for window edges and short charts, quarter hours
for a day's chart (96 points), hours for longer charts and days for long windows' totals."""
MINUTE = GRANULARITIES[0]
DIMENSIONS = ("endpoint", "key_id", "key_name", "model", "tier", "router", "status_class")
KEY_COLUMNS = ("bucket_s", "bucket", *DIMENSIONS)
COUNTS = ("requests", "input_tokens", "output_tokens", "escalated", "hops")
AMOUNTS = ("cost_usd", "baseline_cost_usd", "escalation_cost_usd")
PER_DECADE = 12
DECADES = 6
HIST_BUCKETS = PER_DECADE * DECADES + 2
"""[0, 1 ms), 72 buckets of x1.21 from 1 ms to 1,000 s, then [1,000 s, inf)."""
LATENCY = tuple(f"lat_{i}" for i in range(HIST_BUCKETS))
TTFT = tuple(f"ttft_{i}" for i in range(HIST_BUCKETS))
MEASURES = (*COUNTS, *AMOUNTS, *LATENCY, *TTFT)
LOOKUP_CHUNK = 500
"""Request ids per `IN (...)` when reading rows already stored (well under SQLite's limit)."""


def hist_index(ms: float) -> int:
    """The histogram bucket of a latency in ms (negative or NaN counts as under 1 ms)."""
    if not ms >= 1.0:
        return 0
    return min(HIST_BUCKETS - 1, 1 + int(math.log10(ms) * PER_DECADE))


def bucket_bounds(index: int) -> tuple[float, float]:
    """[low, high) in ms of a histogram bucket; the last one is open-ended (high = low)."""
    if index == 0:
        return 0.0, 1.0
    low = 10 ** ((index - 1) / PER_DECADE)
    return (low, low) if index == HIST_BUCKETS - 1 else (low, 10 ** (index / PER_DECADE))


def hist_percentile(histogram: dict[int, int], pct: float) -> float | None:
    """A percentile estimated from bucket counts: the rank is placed inside its bucket,
    geometrically between the bucket's bounds (at most one bucket, ~21%, off)."""
    counts = [histogram.get(i, 0) for i in range(HIST_BUCKETS)]
    total = sum(counts)
    if total == 0:
        return None
    rank = (total - 1) * pct / 100
    seen = 0
    for index, count in enumerate(counts):
        if count and rank < seen + count:
            low, high = bucket_bounds(index)
            share = (rank - seen + 0.5) / count
            if index == 0:
                return low + (high - low) * share
            return low * (high / low) ** share
        seen += count
    return bucket_bounds(HIST_BUCKETS - 1)[0]


Histogram = dict[int, int]
"""Bucket index -> count, only the non-empty buckets (most are, per group)."""


@dataclass(slots=True)
class Totals:
    """The measures of one group: what a rollup row holds."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    escalated: int = 0
    hops: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    escalation_cost_usd: float = 0.0
    latency: Histogram = field(default_factory=dict)
    ttft: Histogram = field(default_factory=dict)

    @property
    def timed(self) -> int:
        """How many requests the latency histogram holds."""
        return sum(self.latency.values())

    def add(self, other: Totals) -> None:
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.escalated += other.escalated
        self.hops += other.hops
        self.cost_usd += other.cost_usd
        self.baseline_cost_usd += other.baseline_cost_usd
        self.escalation_cost_usd += other.escalation_cost_usd
        for mine, theirs in ((self.latency, other.latency), (self.ttft, other.ttft)):
            for index, count in theirs.items():
                mine[index] = mine.get(index, 0) + count

    def is_zero(self) -> bool:
        measures = (getattr(self, name) for name in (*COUNTS, *AMOUNTS))
        return not any(measures) and not self.latency and not self.ttft

    def count_request(self, request: dict[str, Any]) -> None:
        """Add one request row (in place: this runs once per row the writer stores)."""
        self.requests += 1
        self.input_tokens += request["input_tokens"] or 0
        self.output_tokens += request["output_tokens"] or 0
        self.cost_usd += request["cost_usd"] or 0.0
        self.baseline_cost_usd += request["baseline_cost_usd"] or 0.0
        for value, histogram in (
            (request["latency_ms"], self.latency),
            (request["ttft_ms"], self.ttft),
        ):
            if value is not None:
                index = hist_index(value)
                histogram[index] = histogram.get(index, 0) + 1

    @classmethod
    def from_values(cls, row: Any) -> Totals:
        """From a row (mapping) of measure columns, e.g. a rollup row or their SUMs (the
        histograms stay empty when the row has none)."""
        counts = {name: int(row.get(name) or 0) for name in COUNTS}  # PostgreSQL: Decimal
        amounts = {name: float(row.get(name) or 0.0) for name in AMOUNTS}
        totals = cls(**counts, **amounts)
        if LATENCY[0] in row:
            for histogram, names in ((totals.latency, LATENCY), (totals.ttft, TTFT)):
                for index, name in enumerate(names):
                    if row[name]:
                        histogram[index] = int(row[name])
        return totals


Dims = tuple[Any, ...]
"""Values of DIMENSIONS, None where the row has none."""


def dims_of(request: dict[str, Any]) -> Dims:
    get = request.get
    return (
        get("endpoint"),
        get("key_id"),
        get("key_name"),
        get("model"),
        get("tier"),
        get("router"),
        int(request["status"]) // 100,
    )


def request_totals(request: dict[str, Any]) -> Totals:
    """What one request row adds, before its hops."""
    totals = Totals()
    totals.count_request(request)
    return totals


def hop_totals(hops: Iterable[dict[str, Any]]) -> Totals:
    """What a request's hop rows add: escalated (0/1), $ after the first escalation, hops."""
    hops = list(hops)
    escalations = [h["hop"] for h in hops if h.get("step") == "escalate"]
    first = min(escalations) if escalations else None
    cost = sum(
        float(h.get("cost_usd") or 0.0) for h in hops if first is not None and h["hop"] > first
    )
    return Totals(escalated=int(first is not None), escalation_cost_usd=cost, hops=len(hops))


def _hop_delta(before: Totals, after: Totals) -> Totals:
    return Totals(
        escalated=after.escalated - before.escalated,
        escalation_cost_usd=after.escalation_cost_usd - before.escalation_cost_usd,
        hops=after.hops - before.hops,
    )


Groups = dict[tuple[int, int, *tuple[Any, ...]], Totals]  # type: ignore[misc]


def _slot(groups: Groups, request: dict[str, Any]) -> Totals:
    """The request's minute; `_coarsen` then adds minutes up into the coarser buckets."""
    key = (MINUTE, math.floor(request["ts"] / MINUTE) * MINUTE, *dims_of(request))
    slot = groups.get(key)
    if slot is None:
        groups[key] = slot = Totals()
    return slot


def _coarsen(minutes: Groups) -> Groups:
    groups = dict(minutes)
    for (_, bucket, *dims), totals in minutes.items():
        for step in GRANULARITIES[1:]:
            key = (step, bucket // step * step, *dims)
            slot = groups.get(key)
            if slot is None:
                groups[key] = slot = Totals()
            slot.add(totals)
    return groups


def aggregate(rows: Iterable[dict[str, Any]], stored: Iterable[dict[str, Any]] = ()) -> Groups:
    """What `rows` (new) add to the rollups, given the rows of the same request ids that are
    already `stored`. Returns the increments per (granularity, bucket, *dims)."""
    new_requests: list[dict[str, Any]] = []
    new_hops: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "request":
            new_requests.append(row)
        else:
            new_hops[row["request_id"]].append(row)
    old_requests: dict[str, dict[str, Any]] = {}
    old_hops: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stored:
        if row["kind"] == "request":
            old_requests[row["request_id"]] = row
        else:
            old_hops[row["request_id"]].append(row)
    groups: Groups = {}
    for request in new_requests:  # first sight of a request: all of it, its hops so far incl.
        slot = _slot(groups, request)
        slot.count_request(request)
        hops = old_hops.get(request["request_id"], []) + new_hops.get(request["request_id"], [])
        if hops:
            slot.add(hop_totals(hops))
    seen = {request["request_id"] for request in new_requests}
    for request_id, hops in new_hops.items():  # late hops: only what they change
        request = old_requests.get(request_id)
        if request is None or request_id in seen:
            continue
        before = old_hops.get(request_id, [])
        delta = _hop_delta(hop_totals(before), hop_totals(before + hops))
        if not delta.is_zero():
            _slot(groups, request).add(delta)
    return _coarsen(groups)


STORED_COLUMNS = (
    "request_id",
    "kind",
    "hop",
    "step",
    "ts",
    "status",
    "cost_usd",
    *DIMENSIONS[:-1],
)


def stored_rows(conn: Connection, requests: Table, request_ids: Sequence[str]) -> list[dict]:
    """The rows already stored for these request ids (only what `aggregate` reads)."""
    out: list[dict[str, Any]] = []
    columns = [requests.c[name] for name in STORED_COLUMNS]
    for start in range(0, len(request_ids), LOOKUP_CHUNK):
        chunk = request_ids[start : start + LOOKUP_CHUNK]
        query = select(*columns).where(requests.c.request_id.in_(chunk))
        out += [dict(row._mapping) for row in conn.execute(query)]
    return out


def apply_batch(
    conn: Connection, requests: Table, rollups: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert raw `rows` and their rollup increments in the caller's transaction."""
    ids = list({row["request_id"] for row in rows})
    groups = aggregate(rows, stored_rows(conn, requests, ids))
    conn.execute(requests.insert(), list(rows))
    upsert(conn, rollups, groups)


def upsert(conn: Connection, rollups: Table, groups: Groups) -> None:
    """Add each group's totals to its rollup row, creating it if needed (one statement)."""
    if not groups:
        return
    values = [_values(key, totals) for key, totals in groups.items()]
    cache = f"upsert.{conn.dialect.name}"
    if cache not in rollups.info:
        rollups.info[cache] = _upsert_statement(conn, rollups)
    compiled = rollups.info[cache]
    if compiled is None:  # other databases: update, else insert
        for row in (dict(zip(COLUMNS, v, strict=True)) for v in values):
            match = and_(*(rollups.c[name] == row[name] for name in KEY_COLUMNS))
            changes = {name: rollups.c[name] + row[name] for name in MEASURES}
            if conn.execute(update(rollups).where(match).values(changes)).rowcount == 0:
                conn.execute(rollups.insert().values(row))
        return
    sql, order = compiled  # the driver's executemany: no per-row SQLAlchemy bind work
    if order is None:
        conn.exec_driver_sql(sql, [dict(zip(COLUMNS, v, strict=True)) for v in values])
    elif order == list(range(len(COLUMNS))):
        conn.exec_driver_sql(sql, [tuple(v) for v in values])
    else:
        conn.exec_driver_sql(sql, [tuple(v[i] for i in order) for v in values])


def _values(key: tuple[Any, ...], totals: Totals) -> list[Any]:
    """One rollup row's values in COLUMNS order."""
    histograms = [0] * (2 * HIST_BUCKETS)
    for index, count in totals.latency.items():
        histograms[index] = count
    for index, count in totals.ttft.items():
        histograms[HIST_BUCKETS + index] = count
    return [
        *("" if value is None else value for value in key),
        *(getattr(totals, name) for name in (*COUNTS, *AMOUNTS)),
        *histograms,
    ]


def _upsert_statement(conn: Connection, rollups: Table) -> tuple[str, list[int] | None] | None:
    """`INSERT ... ON CONFLICT (group) DO UPDATE SET m = m + excluded.m`, compiled once per
    table and kept in `Table.info` (its 160-odd columns make building and binding it per
    batch the writer's main cost): the SQL and, for positional drivers, the COLUMNS index of
    each of its parameters. None where the dialect has no such upsert."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    statement = insert(rollups).values({name: bindparam(name) for name in COLUMNS})
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={name: rollups.c[name] + statement.excluded[name] for name in MEASURES},
    )
    compiled = statement.compile(dialect=conn.dialect)
    if not compiled.positional:
        return str(compiled), None
    return str(compiled), [COLUMNS.index(name) for name in compiled.positiontup or ()]


COLUMNS = (*KEY_COLUMNS, *MEASURES)


REBUILD_CHUNK = 20_000


def rebuild(conn: Connection, requests: Table, rollups: Table) -> None:
    """Build the rollups from every raw row (the migration for a ledger that predates them).
    Reads rows grouped by request id in chunks, so memory stays bounded."""
    columns = [requests.c[name] for name in ROW_COLUMNS]
    query = select(*columns).order_by(requests.c.request_id, requests.c.id)
    chunk: list[dict[str, Any]] = []
    result = conn.execute(query.execution_options(yield_per=REBUILD_CHUNK))
    for row in result.mappings():
        if len(chunk) >= REBUILD_CHUNK and chunk[-1]["request_id"] != row["request_id"]:
            upsert(conn, rollups, aggregate(chunk))
            chunk = []
        chunk.append(dict(row))
    result.close()
    upsert(conn, rollups, aggregate(chunk))


ROW_COLUMNS = (
    *STORED_COLUMNS,
    "input_tokens",
    "output_tokens",
    "baseline_cost_usd",
    "latency_ms",
    "ttft_ms",
)
"""The raw columns rollups are computed from."""
