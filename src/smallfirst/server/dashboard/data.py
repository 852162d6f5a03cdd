"""What the dashboard shows, computed from the ledger's rollups with SQLAlchemy core.

Totals, breakdowns, the time series and latency percentiles come from the rollups
(`smallfirst.ledger.rollup_read`), so a panel costs the same at 10k or 10M requests; the raw
rows are read only for "recent requests" (with each one's hops) and, for windows of at most
EXACT_LATENCY_ROWS successful requests, for exact percentiles. Works on any database the
ledger runs on (SQLite, Postgres).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, column, func, select, table

from smallfirst.ledger import rollup_read
from smallfirst.ledger.rollups import Totals, hist_percentile
from smallfirst.server.dashboard.timerange import TimeRange, iso

LEDGER = table(
    "requests",
    *(
        column(name)
        for name in (
            "id",
            "request_id",
            "kind",
            "hop",
            "step",
            "outcome",
            "ts",
            "endpoint",
            "key_id",
            "key_name",
            "requested_model",
            "model",
            "tier",
            "router",
            "route_reason",
            "route_score",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "baseline_cost_usd",
            "latency_ms",
            "ttft_ms",
            "status",
            "error",
        )
    ),
)
C = LEDGER.c
PERCENTILES = (50, 90, 95, 99)
DIRECT_ROUTE = "direct"
"""Route label for requests that named a model themselves (no router involved)."""


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _window(span: TimeRange) -> ColumnElement[bool]:
    """Request rows in the window (read only for recent requests and small windows' exact
    percentiles, both of which walk the `ts` index)."""
    window = and_(C.kind == "request", C.ts >= span.since, C.ts < span.until)
    return window if span.key_id is None else and_(window, C.key_id == span.key_id)


EXACT_LATENCY_ROWS = 2000
"""Windows with at most this many successful requests get exact percentiles from the raw
rows; bigger ones are estimated from the rollups' latency histograms (within one bucket)."""
GROUPS = ("model", "tier", "router", "key_id", "key_name")


@dataclass(slots=True)
class Cube:
    """The window's rollup totals by model, tier, route, key and status class: every panel
    but the time series and recent requests is a sum over it."""

    groups: dict[rollup_read.GroupKey, Totals]
    conn: Connection
    span: TimeRange
    _latencies: list[LatencyRow] | None = None

    def by(self, *names: str) -> dict[tuple[Any, ...], Totals]:
        """Totals merged by some of GROUPS (plus `ok`: status < 400) as the key."""
        positions = [GROUPS.index(name) for name in names]
        out: dict[tuple[Any, ...], Totals] = defaultdict(Totals)
        for key, totals in self.groups.items():
            out[(*(key[i] for i in positions), key[-1] < 4)].add(totals)
        return dict(out)

    def latencies(self, successful: int) -> list[LatencyRow] | None:
        """The raw latency rows when there are few enough and all of them are still stored."""
        if self._latencies is None and successful <= EXACT_LATENCY_ROWS:
            self._latencies = latency_rows(self.conn, self.span, EXACT_LATENCY_ROWS + 1)
        rows = self._latencies
        return rows if rows is not None and len(rows) == successful else None


def cube(conn: Connection, span: TimeRange) -> Cube:
    groups = rollup_read.read(conn, span.since, span.until, GROUPS, key_id=span.key_id)
    return Cube(groups, conn, span)


def _savings(cost: float, baseline: float) -> dict[str, float | None]:
    saved = baseline - cost
    return {
        "cost_usd": cost,
        "baseline_usd": baseline,
        "savings_usd": saved,
        "savings_pct": (100 * saved / baseline) if baseline > 0 else None,
    }


def _latency_stats(totals: Totals, rows: list[LatencyRow] | None) -> dict[str, float | None]:
    """Percentiles of successful requests: exact from `rows` when given, else from the
    histograms in `totals` (which then must hold successful requests only)."""
    if rows is not None:
        latencies = sorted(r[2] for r in rows)  # later sorts of sorted lists are O(n)
        ttfts = sorted(r[3] for r in rows if r[3] is not None)
        stats = {f"p{p}_ms": percentile(latencies, p) for p in PERCENTILES}
        stats["ttft_p50_ms"] = percentile(ttfts, 50)
        stats["ttft_p95_ms"] = percentile(ttfts, 95)
        return stats
    stats = {f"p{p}_ms": hist_percentile(totals.latency, p) for p in PERCENTILES}
    stats["ttft_p50_ms"] = hist_percentile(totals.ttft, 50)
    stats["ttft_p95_ms"] = hist_percentile(totals.ttft, 95)
    return stats


def summary(conn: Connection, span: TimeRange, window: Cube | None = None) -> dict[str, Any]:
    """Headline numbers: traffic, spend vs the always-large baseline, escalations, latency.
    `window`: `cube(conn, span)` when the caller already has it."""
    window = window or cube(conn, span)
    split = window.by()
    ok, failed = split.get((True,), Totals()), split.get((False,), Totals())
    every = rollup_read.total(split)
    requests = every.requests
    successful = ok.timed
    return {
        "range": span.as_json(),
        "requests": requests,
        "errors": failed.requests,
        "error_rate": failed.requests / requests if requests else None,
        "escalated": every.escalated,
        "escalation_rate": every.escalated / requests if requests else None,
        "input_tokens": int(every.input_tokens),
        "output_tokens": int(every.output_tokens),
        **_savings(float(every.cost_usd), float(every.baseline_cost_usd)),
        "latency": _latency_stats(ok, window.latencies(successful)),
    }


LatencyRow = tuple[str | None, str | None, float, float | None]
"""(model, tier, latency_ms, ttft_ms) of one successful request."""


def latency_rows(conn: Connection, span: TimeRange, limit: int | None = None) -> list[LatencyRow]:
    """Latency and TTFT of successful requests (errors fail fast and would flatter p50)."""
    query = select(C.model, C.tier, C.latency_ms, C.ttft_ms).where(
        _window(span), C.status < 400, C.latency_ms.is_not(None)
    )
    return [tuple(row) for row in conn.execute(query.limit(limit))]


def series(conn: Connection, span: TimeRange) -> dict[str, Any]:
    """Requests and $ per bucket, split by tier and by model, plus the baseline per bucket.
    From the rollups: the rows read are (buckets x tiers x models), not requests."""
    step = span.bucket_s()
    origin = math.floor(span.since / step) * step
    count = max(1, math.ceil((span.until - origin) / step))
    groups = rollup_read.read(
        conn,
        span.since,
        span.until,
        ("tier", "model"),
        key_id=span.key_id,
        series=rollup_read.Series(origin, step),
        histograms=False,
    )
    cost, baseline = [0.0] * count, [0.0] * count
    by: dict[str, dict[str, dict[str, list[float]]]] = {"tier": {}, "model": {}}
    for (bucket, tier, model, _status), totals in groups.items():
        at = min(count - 1, int(bucket))
        cost[at] += totals.cost_usd
        baseline[at] += totals.baseline_cost_usd
        for group, name in (("tier", tier or "none"), ("model", model or "none")):
            slot = by[group].setdefault(name, {"requests": [0] * count, "cost_usd": [0.0] * count})
            slot["requests"][at] += totals.requests
            slot["cost_usd"][at] += totals.cost_usd
    return {
        "range": span.as_json(),
        "bucket_s": step,
        "buckets": [origin + i * step for i in range(count)],
        "cost_usd": cost,
        "baseline_usd": baseline,
        "by_tier": by["tier"],
        "by_model": by["model"],
    }


def routes(conn: Connection, span: TimeRange, window: Cube | None = None) -> list[dict[str, Any]]:
    """Per route (router name, or `direct`): traffic, escalation rate and where it went."""
    window = window or cube(conn, span)
    merged: dict[str, dict[str, Any]] = {}
    for (router, tier, _ok), totals in window.by("router", "tier").items():
        name = router or DIRECT_ROUTE
        slot = merged.setdefault(name, {"route": name, "totals": Totals(), "tiers": {}})
        slot["totals"].add(totals)
        tiers = slot["tiers"]
        tiers[tier or "none"] = tiers.get(tier or "none", 0) + totals.requests
    result = []
    for slot in sorted(merged.values(), key=lambda s: -s["totals"].requests):
        totals = slot["totals"]
        result.append(
            {
                "route": slot["route"],
                "requests": totals.requests,
                "escalated": totals.escalated,
                "tiers": slot["tiers"],
                "escalation_rate": totals.escalated / totals.requests,
                **_savings(totals.cost_usd, totals.baseline_cost_usd),
            }
        )
    return result


def latency_by_model(
    conn: Connection, span: TimeRange, window: Cube | None = None
) -> list[dict[str, Any]]:
    """Latency and TTFT percentiles per serving model (successful requests only)."""
    window = window or cube(conn, span)
    ok = {
        (model or "none", tier or "none"): totals
        for (model, tier, success), totals in window.by("model", "tier").items()
        if success and totals.timed
    }
    rows = window.latencies(sum(t.timed for t in ok.values()))
    exact: dict[tuple[str, str], list[LatencyRow]] = defaultdict(list)
    for row in rows or ():
        exact[(row[0] or "none", row[1] or "none")].append(row)
    return [
        {
            "model": model,
            "tier": tier,
            "requests": totals.timed,
            **_latency_stats(totals, None if rows is None else exact[(model, tier)]),
        }
        for (model, tier), totals in sorted(ok.items(), key=lambda kv: -kv[1].timed)
    ]


def top_keys(
    conn: Connection, span: TimeRange, limit: int = 10, window: Cube | None = None
) -> list[dict[str, Any]]:
    """API keys by spend (requests without a key are grouped as `(no key)`)."""
    window = window or cube(conn, span)
    keys: dict[tuple[Any, Any], Totals] = defaultdict(Totals)
    for (key_id, name, _ok), totals in window.by("key_id", "key_name").items():
        keys[(key_id, name)].add(totals)
    ranked = sorted(keys.items(), key=lambda kv: (-kv[1].cost_usd, -kv[1].requests))
    return [
        {
            "key_id": key_id,
            "key_name": name or key_id or "(no key)",
            "requests": totals.requests,
            **_savings(float(totals.cost_usd), float(totals.baseline_cost_usd)),
        }
        for (key_id, name), totals in ranked[:limit]
    ]


RECENT_COLUMNS = (
    "request_id",
    "ts",
    "endpoint",
    "key_name",
    "requested_model",
    "model",
    "tier",
    "router",
    "route_reason",
    "route_score",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "baseline_cost_usd",
    "latency_ms",
    "ttft_ms",
    "status",
    "error",
)


def recent(conn: Connection, span: TimeRange, limit: int = 50) -> list[dict[str, Any]]:
    """The latest requests with their route decision and, for cascades, each hop in order."""
    rows = conn.execute(
        select(*(C[name] for name in RECENT_COLUMNS))
        .where(_window(span))
        .order_by(C.ts.desc(), C.id.desc())
        .limit(limit)
    ).all()
    items = [dict(zip(RECENT_COLUMNS, row, strict=True)) for row in rows]
    hops = _hops(conn, [item["request_id"] for item in items])
    for item in items:
        item["time"] = iso(item["ts"])
        item["hops"] = hops.get(item["request_id"], [])
        item["escalated"] = any(h["step"] == "escalate" for h in item["hops"])
    return items


def _hops(conn: Connection, request_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    ids = list(request_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(C.request_id, C.hop, C.step, C.model, C.tier, C.outcome, C.cost_usd)
        .where(C.kind == "hop", C.request_id.in_(ids))
        .order_by(C.request_id, C.hop)
    ).all()
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for request_id, hop, step, model, tier, outcome, cost in rows:
        grouped[request_id].append(
            {
                "hop": hop,
                "step": step,
                "model": model,
                "tier": tier,
                "outcome": outcome,
                "cost_usd": cost,
            }
        )
    return grouped


def earliest(conn: Connection) -> float | None:
    """Time of the first request in the ledger (for `since=all`): the oldest raw row, or the
    oldest rollup minute when older rows were pruned."""
    first_row = conn.execute(select(func.min(C.ts)).where(C.kind == "request")).scalar()
    first_bucket = rollup_read.earliest_bucket(conn)
    if first_row is None or (first_bucket is not None and first_bucket < first_row // 60 * 60):
        return first_bucket
    return first_row
