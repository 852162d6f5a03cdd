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
import operator
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, Table, and_, bindparam, select, update

GRANULARITIES = (60, 900, 3600, 86400)
"""Bucket sizes kept, finest first: minutes for window edges and short charts, quarter hours
for a day's chart (96 points), hours for longer charts and days for long windows' totals."""
MINUTE = GRANULARITIES[0]
DIMENSIONS = ("endpoint", "key_id", "key_name", "model", "tier", "router", "status_class")
KEY_COLUMNS = ("bucket_s", "bucket", *DIMENSIONS)
CACHE_COUNTS = ("cached_input_tokens", "cache_write_tokens")
"""Prompt-cache tokens: raw columns since m006, so not in `ROW_COLUMNS` (m003 reads those)."""
COUNTS = ("requests", "input_tokens", "output_tokens", "escalated", "hops", *CACHE_COUNTS)
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
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    escalation_cost_usd: float = 0.0
    latency: Histogram = field(default_factory=dict)
    ttft: Histogram = field(default_factory=dict)
    cache_hits: int = 0
    """Response-cache hits; with `cache_saved_usd`, the baseline $ they saved. Held by the
    route rollups alone (`route_rollups.py`): 0 in totals read from the others."""
    cache_saved_usd: float = 0.0

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
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cost_usd += other.cost_usd
        self.baseline_cost_usd += other.baseline_cost_usd
        self.escalation_cost_usd += other.escalation_cost_usd
        self.cache_hits += other.cache_hits
        self.cache_saved_usd += other.cache_saved_usd
        for mine, theirs in ((self.latency, other.latency), (self.ttft, other.ttft)):
            for index, count in theirs.items():
                mine[index] = mine.get(index, 0) + count

    def count_request(self, request: dict[str, Any]) -> None:
        """Add one request row (in place: this runs once per row the writer stores)."""
        self.requests += 1
        self.input_tokens += request["input_tokens"] or 0
        self.output_tokens += request["output_tokens"] or 0
        self.cached_input_tokens += request.get("cached_input_tokens") or 0
        self.cache_write_tokens += request.get("cache_write_tokens") or 0
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
        measures: dict[str, Any] = {**counts, **amounts}
        totals = cls(**measures)
        if "cache_hits" in row:  # a route rollup row
            totals.cache_hits = int(row["cache_hits"] or 0)
            totals.cache_saved_usd = float(row["cache_saved_usd"] or 0.0)
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


OFF_PATH_STEPS = ("shadow", "audit", "judge")
"""Hops made after the answer was sent (smallfirst/learning/shadow.py), paid from the
learning budget: never part of what an escalation cost."""


def hop_totals(hops: Iterable[dict[str, Any]]) -> Totals:
    """What a request's hop rows add: escalated (0/1), $ after the first escalation, hops."""
    hops = list(hops)
    escalations = [h["hop"] for h in hops if h.get("step") == "escalate"]
    first = min(escalations) if escalations else None
    cost = sum(
        float(h.get("cost_usd") or 0.0)
        for h in hops
        if first is not None and h["hop"] > first and h.get("step") not in OFF_PATH_STEPS
    )
    return Totals(escalated=int(first is not None), escalation_cost_usd=cost, hops=len(hops))


Increments = dict[tuple[Any, ...], list[Any]]
"""(granularity, bucket start, *dims) -> what to add to that rollup row, in MEASURES order.

A flat list rather than `Totals`: the writer builds one per group in every flush and hands it
to the driver as is, and adding two of them up is one `map` over plain numbers."""

_AT = {name: index for index, name in enumerate(MEASURES)}
_REQUESTS, _INPUT, _OUTPUT = _AT["requests"], _AT["input_tokens"], _AT["output_tokens"]
_ESCALATED, _HOPS, _COST = _AT["escalated"], _AT["hops"], _AT["cost_usd"]
_BASELINE, _ESCALATION_COST = _AT["baseline_cost_usd"], _AT["escalation_cost_usd"]
_CACHED, _CACHE_WRITE = _AT["cached_input_tokens"], _AT["cache_write_tokens"]
_LAT0, _TTFT0 = _AT[LATENCY[0]], _AT[TTFT[0]]
_ZERO = [0.0 if name in AMOUNTS else 0 for name in MEASURES]


def _minute(groups: Increments, request: dict[str, Any]) -> list[Any]:
    """The increments of the request's minute; `coarsen` adds minutes into coarser buckets."""
    get = request.get
    key = (
        MINUTE,
        math.floor(request["ts"] / MINUTE) * MINUTE,
        get("endpoint"),
        get("key_id"),
        get("key_name"),
        get("model"),
        get("tier"),
        get("router"),
        int(request["status"]) // 100,
    )
    slot = groups.get(key)
    if slot is None:
        groups[key] = slot = _ZERO.copy()
    return slot


def _count_request(slot: list[Any], request: dict[str, Any]) -> None:
    """`Totals.count_request` on a flat increment (the writer's per-row step)."""
    slot[_REQUESTS] += 1
    slot[_INPUT] += request["input_tokens"] or 0
    slot[_OUTPUT] += request["output_tokens"] or 0
    slot[_CACHED] += request.get("cached_input_tokens") or 0  # absent before m006 (rebuild)
    slot[_CACHE_WRITE] += request.get("cache_write_tokens") or 0
    slot[_COST] += request["cost_usd"] or 0.0
    slot[_BASELINE] += request["baseline_cost_usd"] or 0.0
    latency, ttft = request["latency_ms"], request["ttft_ms"]
    if latency is not None:
        slot[_LAT0 + hist_index(latency)] += 1
    if ttft is not None:
        slot[_TTFT0 + hist_index(ttft)] += 1


def _count_hops(slot: list[Any], after: Totals, before: Totals | None = None) -> None:
    """Add what a request's hops add (`after`), less what they added already (`before`)."""
    before = before or Totals()
    slot[_ESCALATED] += after.escalated - before.escalated
    slot[_HOPS] += after.hops - before.hops
    slot[_ESCALATION_COST] += after.escalation_cost_usd - before.escalation_cost_usd


def coarsen(minutes: Increments) -> Increments:
    """The minute increments plus each added into its quarter hour, hour and day (the keys
    being (granularity, bucket start, *dims), whatever the dims)."""
    groups = dict(minutes)
    for (_, bucket, *dims), values in minutes.items():
        for step in GRANULARITIES[1:]:
            key = (step, bucket // step * step, *dims)
            slot = groups.get(key)
            groups[key] = values.copy() if slot is None else list(map(operator.add, slot, values))
    return groups


def aggregate(rows: Iterable[dict[str, Any]], stored: Iterable[dict[str, Any]] = ()) -> Increments:
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
    groups: Increments = {}
    for request in new_requests:  # first sight of a request: all of it, its hops so far incl.
        slot = _minute(groups, request)
        _count_request(slot, request)
        request_id = request["request_id"]
        if request_id in new_hops or request_id in old_hops:
            hops = old_hops.get(request_id, []) + new_hops.get(request_id, [])
            _count_hops(slot, hop_totals(hops))
    seen = {request["request_id"] for request in new_requests}
    for request_id, hops in new_hops.items():  # late hops: only what they change
        old = old_requests.get(request_id)
        if old is None or request_id in seen:
            continue
        before = old_hops.get(request_id, [])
        _count_hops(_minute(groups, old), hop_totals(before + hops), hop_totals(before))
    return coarsen(groups)


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


PLACEHOLDERS = {"sqlite": "?", "postgresql": "%s"}
"""The positional parameter marker of the drivers `stored_rows` talks to directly."""


def stored_rows(conn: Connection, requests: Table, request_ids: Sequence[str]) -> list[dict]:
    """The rows already stored for these request ids (only what `aggregate` reads).

    Usually none: this runs once per flush for every id in it. On SQLite and PostgreSQL the
    lookup goes to the driver as plain SQL, since building and binding an `IN (...)` of
    hundreds of ids through SQLAlchemy cost the writer more than the index probes."""
    out: list[dict[str, Any]] = []
    marker = PLACEHOLDERS.get(conn.dialect.name)
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in STORED_COLUMNS)
    columns = [requests.c[name] for name in STORED_COLUMNS]
    for start in range(0, len(request_ids), LOOKUP_CHUNK):
        chunk = request_ids[start : start + LOOKUP_CHUNK]
        if marker is None:
            query = select(*columns).where(requests.c.request_id.in_(chunk))
            out += [dict(row._mapping) for row in conn.execute(query)]
            continue
        sql = (
            f"SELECT {names} FROM {quote(requests.name)} "
            f"WHERE request_id IN ({', '.join([marker] * len(chunk))})"
        )
        result = conn.exec_driver_sql(sql, tuple(chunk))
        out += [dict(zip(STORED_COLUMNS, row, strict=True)) for row in result]
    return out


def apply_batch(
    conn: Connection, requests: Table, rollups: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert raw `rows` and their rollup increments in the caller's transaction."""
    ids = list({row["request_id"] for row in rows})
    groups = aggregate(rows, stored_rows(conn, requests, ids))
    insert_raw(conn, requests, rows)
    upsert(conn, rollups, groups)


def insert_raw(conn: Connection, requests: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The raw rows alone (what the writer did before rollups; the benchmark's baseline)."""
    conn.execute(requests.insert(), list(rows))


def upsert(
    conn: Connection,
    rollups: Table,
    groups: Increments,
    key_columns: tuple[str, ...] = KEY_COLUMNS,
    measures: tuple[str, ...] = MEASURES,
) -> None:
    """Add each group's increments to its rollup row, creating it if needed: one statement,
    executed by the driver for all groups at once. `key_columns` and `measures` name what the
    keys and increments hold (the task rollups have their own, `task_rollups.py`)."""
    if not groups:
        return
    columns = (*key_columns, *measures)
    values = [
        [*("" if value is None else value for value in key), *increments]
        for key, increments in groups.items()
    ]
    cache = f"upsert.{conn.dialect.name}"
    if cache not in rollups.info:
        rollups.info[cache] = _upsert_statement(conn, rollups, key_columns, measures)
    compiled = rollups.info[cache]
    if compiled is None:  # other databases: update, else insert
        for row in (dict(zip(columns, v, strict=True)) for v in values):
            match = and_(*(rollups.c[name] == row[name] for name in key_columns))
            changes = {name: rollups.c[name] + row[name] for name in measures}
            if conn.execute(update(rollups).where(match).values(changes)).rowcount == 0:
                conn.execute(rollups.insert().values(row))
        return
    sql, order = compiled  # the driver's executemany: no per-row SQLAlchemy bind work
    if order is None:
        conn.exec_driver_sql(sql, [dict(zip(columns, v, strict=True)) for v in values])
    elif order == list(range(len(columns))):
        conn.exec_driver_sql(sql, [tuple(v) for v in values])
    else:
        conn.exec_driver_sql(sql, [tuple(v[i] for i in order) for v in values])


def _upsert_statement(
    conn: Connection, rollups: Table, key_columns: tuple[str, ...], measures: tuple[str, ...]
) -> tuple[str, list[int] | None] | None:
    """`INSERT ... ON CONFLICT (group) DO UPDATE SET m = m + excluded.m`, compiled once per
    table and kept in `Table.info` (its 160-odd columns make building and binding it per
    batch the writer's main cost): the SQL and, for positional drivers, the COLUMNS index of
    each of its parameters. None where the dialect has no such upsert."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = conn.dialect.name
    statement: sqlite.Insert | postgresql.Insert
    if dialect == "sqlite":
        statement = sqlite.insert(rollups)
    elif dialect == "postgresql":
        statement = postgresql.insert(rollups)
    else:
        return None
    columns = (*key_columns, *measures)
    statement = statement.values({name: bindparam(name) for name in columns})
    statement = statement.on_conflict_do_update(
        index_elements=list(key_columns),
        set_={name: rollups.c[name] + statement.excluded[name] for name in measures},
    )
    compiled = statement.compile(dialect=conn.dialect)
    if not compiled.positional:
        return str(compiled), None
    return str(compiled), [columns.index(name) for name in compiled.positiontup or ()]


COLUMNS = (*KEY_COLUMNS, *MEASURES)


REBUILD_CHUNK = 20_000


def in_chunks(conn: Connection, query: Select[Any]) -> Iterator[list[dict[str, Any]]]:
    """The rows `query` selects, as lists of up to `REBUILD_CHUNK` dicts, streamed (what a
    migration building a rollup table from the raw rows reads, in bounded memory)."""
    result = conn.execute(query.execution_options(yield_per=REBUILD_CHUNK))
    try:
        for chunk in result.mappings().partitions(REBUILD_CHUNK):
            yield [dict(row) for row in chunk]
    finally:
        result.close()


def rebuild(conn: Connection, requests: Table, rollups: Table) -> None:
    """Build the rollups from every raw row (the migration for a ledger that predates them).
    Reads rows grouped by request id in chunks, so memory stays bounded."""
    columns = [requests.c[name] for name in ROW_COLUMNS if name in requests.c]  # m003: no task
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
    "task",
)
"""The raw columns rollups (and task rollups) are computed from; `task` since m010."""
