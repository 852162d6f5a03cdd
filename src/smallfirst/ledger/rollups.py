"""Rollups: the ledger's request rows pre-aggregated per minute and per hour.

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

from sqlalchemy import Connection, Table, and_, select, update

GRANULARITIES = (60, 3600)
"""Bucket sizes kept: minutes for exact window edges and short charts, hours for the rest."""
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


def hist_percentile(counts: Sequence[int], pct: float) -> float | None:
    """A percentile estimated from bucket counts: the rank is placed inside its bucket,
    geometrically between the bucket's bounds (at most one bucket, ~21%, off)."""
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
    latency: list[int] = field(default_factory=lambda: [0] * HIST_BUCKETS)
    ttft: list[int] = field(default_factory=lambda: [0] * HIST_BUCKETS)

    def add(self, other: Totals) -> None:
        for name in (*COUNTS, *AMOUNTS):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.ttft = [a + b for a, b in zip(self.ttft, other.ttft, strict=True)]

    def is_zero(self) -> bool:
        return not any(getattr(self, name) for name in (*COUNTS, *AMOUNTS)) and not any(
            self.latency
        )

    def as_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(self, name) for name in (*COUNTS, *AMOUNTS)}
        values.update(zip(LATENCY, self.latency, strict=True))
        values.update(zip(TTFT, self.ttft, strict=True))
        return values

    @classmethod
    def from_values(cls, row: Any) -> Totals:
        """From a row (mapping) of measure columns, e.g. a rollup row or their SUMs (the
        histograms stay empty when the row has none)."""
        counts = {name: int(row.get(name) or 0) for name in COUNTS}  # PostgreSQL: Decimal
        amounts = {name: float(row.get(name) or 0.0) for name in AMOUNTS}
        totals = cls(**counts, **amounts)
        if LATENCY[0] in row:
            totals.latency = [int(row[name] or 0) for name in LATENCY]
            totals.ttft = [int(row[name] or 0) for name in TTFT]
        return totals


Dims = tuple[Any, ...]
"""Values of DIMENSIONS, None where the row has none."""


def dims_of(request: dict[str, Any]) -> Dims:
    values = [request.get(name) for name in DIMENSIONS[:-1]]
    return (*values, int(request["status"]) // 100)


def request_totals(request: dict[str, Any]) -> Totals:
    """What one request row adds, before its hops."""
    totals = Totals(
        requests=1,
        input_tokens=int(request.get("input_tokens") or 0),
        output_tokens=int(request.get("output_tokens") or 0),
        cost_usd=float(request.get("cost_usd") or 0.0),
        baseline_cost_usd=float(request.get("baseline_cost_usd") or 0.0),
    )
    if request.get("latency_ms") is not None:
        totals.latency[hist_index(request["latency_ms"])] = 1
    if request.get("ttft_ms") is not None:
        totals.ttft[hist_index(request["ttft_ms"])] = 1
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


def _add(groups: Groups, request: dict[str, Any], totals: Totals) -> None:
    dims = dims_of(request)
    for step in GRANULARITIES:
        bucket = math.floor(request["ts"] / step) * step
        slot = groups.get((step, bucket, *dims))
        if slot is None:
            groups[(step, bucket, *dims)] = slot = Totals()
        slot.add(totals)


def aggregate(rows: Iterable[dict[str, Any]], stored: Iterable[dict[str, Any]] = ()) -> Groups:
    """What `rows` (new) add to the rollups, given the rows of the same request ids that are
    already `stored`. Returns the increments per (granularity, bucket, *dims)."""
    new_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        new_by_id[row["request_id"]].append(row)
    old_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stored:
        old_by_id[row["request_id"]].append(row)
    groups: Groups = {}
    for request_id, new in new_by_id.items():
        old = old_by_id.get(request_id, [])
        new_request = next((r for r in new if r["kind"] == "request"), None)
        old_request = next((r for r in old if r["kind"] == "request"), None)
        new_hops = [r for r in new if r["kind"] == "hop"]
        old_hops = [r for r in old if r["kind"] == "hop"]
        if new_request is not None:  # first sight of the request: all of it, hops so far incl.
            totals = request_totals(new_request)
            totals.add(hop_totals(old_hops + new_hops))
            _add(groups, new_request, totals)
        elif old_request is not None and new_hops:  # late hops: only what they change
            delta = _hop_delta(hop_totals(old_hops), hop_totals(old_hops + new_hops))
            if not delta.is_zero():
                _add(groups, old_request, delta)
    return groups


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
    rows = [
        {**dict(zip(KEY_COLUMNS, _stored_key(key), strict=True)), **totals.as_values()}
        for key, totals in groups.items()
    ]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(rollups)
        statement = statement.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS),
            set_={name: rollups.c[name] + statement.excluded[name] for name in MEASURES},
        )
        conn.execute(statement, rows)
        return
    for row in rows:  # other databases: update, else insert
        match = and_(*(rollups.c[name] == row[name] for name in KEY_COLUMNS))
        changes = {name: rollups.c[name] + row[name] for name in MEASURES}
        if conn.execute(update(rollups).where(match).values(changes)).rowcount == 0:
            conn.execute(rollups.insert().values(row))


def _stored_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("" if value is None else value for value in key)


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
