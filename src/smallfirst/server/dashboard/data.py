"""What the dashboard shows, computed from the ledger with SQLAlchemy core.

Works on any database the ledger runs on (SQLite, Postgres): sums, counts and time buckets are
computed in SQL (one small dialect shim for `floor`); percentiles are computed in Python over
the latency column, because SQLite has no `percentile_cont`.

Only `request` rows count towards totals (they already hold the sum of their hops); `hop` rows
are read to tell which requests escalated and to show a request's path.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    case,
    column,
    func,
    select,
    table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

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
WIDE_WINDOW_SHARE = 0.15
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


def _window(conn: Connection, span: TimeRange) -> ColumnElement[bool]:
    """Request rows in the window. SQLite walks the `ts` index even when the window holds
    most of the ledger, which is several times slower than a plain scan; for such wide windows
    `ts + 0` hides the index from it. (Postgres keeps statistics and chooses well itself.)"""
    ts: ColumnElement[Any] = C.ts
    if conn.dialect.name == "sqlite" and _covers_most(conn, span):
        ts = C.ts + 0
    window = and_(C.kind == "request", ts >= span.since, ts < span.until)
    return window if span.key_id is None else and_(window, C.key_id == span.key_id)


def _covers_most(conn: Connection, span: TimeRange) -> bool:
    """Whether the window spans more than WIDE_WINDOW_SHARE of the ledger's time range
    (two index look-ups: SQLite answers a lone min() or max() from the index)."""
    low = conn.execute(select(func.min(C.ts))).scalar()
    high = conn.execute(select(func.max(C.ts))).scalar()
    if low is None or high is None or high <= low:
        return False
    covered = min(span.until, high) - max(span.since, low)
    return covered / (high - low) > WIDE_WINDOW_SHARE


def _escalations(conn: Connection, span: TimeRange) -> dict[str, int]:
    """Escalated requests per route: those with at least one `escalate` hop. Read from the
    (few) escalate hops joined to their request row, not by joining every request to hops."""
    hops = LEDGER.alias("hops")
    route = func.coalesce(C.router, DIRECT_ROUTE)
    rows = conn.execute(
        select(route, func.count(func.distinct(C.request_id)))
        .select_from(hops.join(LEDGER, C.request_id == hops.c.request_id))
        .where(hops.c.kind == "hop", hops.c.step == "escalate", _window(conn, span))
        .group_by(route)
    ).all()
    return {name: count for name, count in rows}


def _savings(cost: float, baseline: float) -> dict[str, float | None]:
    saved = baseline - cost
    return {
        "cost_usd": cost,
        "baseline_usd": baseline,
        "savings_usd": saved,
        "savings_pct": (100 * saved / baseline) if baseline > 0 else None,
    }


def _latency_stats(latencies: list[float], ttfts: list[float]) -> dict[str, float | None]:
    latencies, ttfts = sorted(latencies), sorted(ttfts)  # later sorts of sorted lists are O(n)
    stats: dict[str, float | None] = {f"p{p}_ms": percentile(latencies, p) for p in PERCENTILES}
    stats["ttft_p50_ms"] = percentile(ttfts, 50)
    stats["ttft_p95_ms"] = percentile(ttfts, 95)
    return stats


def summary(
    conn: Connection, span: TimeRange, latencies: list[LatencyRow] | None = None
) -> dict[str, Any]:
    """Headline numbers: traffic, spend vs the always-large baseline, escalations, latency.
    `latencies`: `latency_rows(conn, span)` when the caller already has them."""
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(C.cost_usd), 0.0),
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
            func.coalesce(func.sum(C.input_tokens), 0),
            func.coalesce(func.sum(C.output_tokens), 0),
            func.coalesce(func.sum(case((C.status >= 400, 1), else_=0)), 0),
        ).where(_window(conn, span))
    ).one()
    requests, cost, baseline, tokens_in, tokens_out, errors = row
    escalated = sum(_escalations(conn, span).values())
    rows = latency_rows(conn, span) if latencies is None else latencies
    return {
        "range": span.as_json(),
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "escalated": escalated,
        "escalation_rate": escalated / requests if requests else None,
        "input_tokens": int(tokens_in),
        "output_tokens": int(tokens_out),
        **_savings(float(cost), float(baseline)),
        "latency": _latency_stats([r[2] for r in rows], [r[3] for r in rows if r[3] is not None]),
    }


LatencyRow = tuple[str | None, str | None, float, float | None]
"""(model, tier, latency_ms, ttft_ms) of one successful request."""


def latency_rows(conn: Connection, span: TimeRange) -> list[LatencyRow]:
    """Latency and TTFT of successful requests (errors fail fast and would flatter p50)."""
    query = select(C.model, C.tier, C.latency_ms, C.ttft_ms).where(
        _window(conn, span), C.status < 400, C.latency_ms.is_not(None)
    )
    return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


class _BucketIndex(FunctionElement[int]):
    """floor(x) for a non-negative x: `CAST(x AS INTEGER)` truncates on SQLite (whose FLOOR
    needs the optional math extension); Postgres rounds such a cast, so it gets FLOOR."""

    type = Integer()
    inherit_cache = True


@compiles(_BucketIndex)
def _floor(element: _BucketIndex, compiler: Any, **kw: Any) -> str:
    return f"FLOOR({compiler.process(element.clauses, **kw)})"


@compiles(_BucketIndex, "sqlite")
def _truncate(element: _BucketIndex, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


def series(conn: Connection, span: TimeRange) -> dict[str, Any]:
    """Requests and $ per bucket, split by tier and by model, plus the baseline per bucket.
    Grouped in SQL, so the rows read are (buckets x tiers x models), not requests."""
    step = span.bucket_s()
    origin = math.floor(span.since / step) * step
    count = max(1, math.ceil((span.until - origin) / step))
    index = _BucketIndex((C.ts - origin) / float(step)).label("bucket")
    rows = conn.execute(
        select(
            index,
            C.tier,
            C.model,
            func.count(),
            func.coalesce(func.sum(C.cost_usd), 0.0),
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
        )
        .where(_window(conn, span))
        .group_by(index, C.tier, C.model)
    ).all()
    cost, baseline = [0.0] * count, [0.0] * count
    by: dict[str, dict[str, dict[str, list[float]]]] = {"tier": {}, "model": {}}
    for bucket, tier, model, requests, row_cost, row_baseline in rows:
        at = min(count - 1, int(bucket))
        cost[at] += row_cost
        baseline[at] += row_baseline
        for group, name in (("tier", tier or "none"), ("model", model or "none")):
            slot = by[group].setdefault(name, {"requests": [0] * count, "cost_usd": [0.0] * count})
            slot["requests"][at] += requests
            slot["cost_usd"][at] += row_cost
    return {
        "range": span.as_json(),
        "bucket_s": step,
        "buckets": [origin + i * step for i in range(count)],
        "cost_usd": cost,
        "baseline_usd": baseline,
        "by_tier": by["tier"],
        "by_model": by["model"],
    }


def routes(conn: Connection, span: TimeRange) -> list[dict[str, Any]]:
    """Per route (router name, or `direct`): traffic, escalation rate and where it went."""
    escalated_by_route = _escalations(conn, span)
    route = func.coalesce(C.router, DIRECT_ROUTE).label("route")
    rows = conn.execute(
        select(
            route,
            C.tier,
            func.count(),
            func.coalesce(func.sum(C.cost_usd), 0.0),
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
        )
        .where(_window(conn, span))
        .group_by(route, C.tier)
    ).all()
    merged: dict[str, dict[str, Any]] = {}
    for name, tier, requests, cost, baseline in rows:
        slot = merged.setdefault(
            name,
            {
                "route": name,
                "requests": 0,
                "escalated": escalated_by_route.get(name, 0),
                "cost": 0.0,
                "base": 0.0,
            },
        )
        slot["requests"] += requests
        slot["cost"] += cost
        slot["base"] += baseline
        slot.setdefault("tiers", {})[tier or "none"] = requests
    result = []
    for slot in sorted(merged.values(), key=lambda s: -s["requests"]):
        cost, base = slot.pop("cost"), slot.pop("base")
        slot["escalation_rate"] = slot["escalated"] / slot["requests"]
        result.append({**slot, **_savings(cost, base)})
    return result


def latency_by_model(
    conn: Connection, span: TimeRange, latencies: list[LatencyRow] | None = None
) -> list[dict[str, Any]]:
    """Latency and TTFT percentiles per serving model (successful requests only)."""
    rows = latency_rows(conn, span) if latencies is None else latencies
    grouped: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for model, tier, latency, ttft in rows:
        lat, first = grouped[(model or "none", tier or "none")]
        lat.append(latency)
        if ttft is not None:
            first.append(ttft)
    return [
        {"model": model, "tier": tier, "requests": len(lat), **_latency_stats(lat, first)}
        for (model, tier), (lat, first) in sorted(grouped.items(), key=lambda kv: -len(kv[1][0]))
    ]


def top_keys(conn: Connection, span: TimeRange, limit: int = 10) -> list[dict[str, Any]]:
    """API keys by spend (requests without a key are grouped as `(no key)`)."""
    spend = func.coalesce(func.sum(C.cost_usd), 0.0)
    rows = conn.execute(
        select(
            C.key_id,
            C.key_name,
            func.count(),
            spend,
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
        )
        .where(_window(conn, span))
        .group_by(C.key_id, C.key_name)
        .order_by(spend.desc(), func.count().desc())
        .limit(limit)
    ).all()
    return [
        {
            "key_id": key_id,
            "key_name": name or key_id or "(no key)",
            "requests": requests,
            **_savings(float(cost), float(baseline)),
        }
        for key_id, name, requests, cost, baseline in rows
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
        .where(_window(conn, span))
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
    """Time of the first request in the ledger (for `since=all`)."""
    return conn.execute(select(func.min(C.ts)).where(C.kind == "request")).scalar()
