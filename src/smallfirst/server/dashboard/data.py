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
    Subquery,
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
    return and_(C.kind == "request", C.ts >= span.since, C.ts < span.until)


def _escalated_ids() -> Subquery:
    """Request ids with at least one `escalate` hop: the answer had to climb the ladder."""
    return (
        select(C.request_id.label("escalated_id"))
        .where(C.kind == "hop", C.step == "escalate")
        .distinct()
        .subquery("escalated")
    )


def _savings(cost: float, baseline: float) -> dict[str, float | None]:
    saved = baseline - cost
    return {
        "cost_usd": cost,
        "baseline_usd": baseline,
        "savings_usd": saved,
        "savings_pct": (100 * saved / baseline) if baseline > 0 else None,
    }


def _latency_stats(latencies: list[float], ttfts: list[float]) -> dict[str, float | None]:
    stats: dict[str, float | None] = {f"p{p}_ms": percentile(latencies, p) for p in PERCENTILES}
    stats["ttft_p50_ms"] = percentile(ttfts, 50)
    stats["ttft_p95_ms"] = percentile(ttfts, 95)
    return stats


def summary(conn: Connection, span: TimeRange) -> dict[str, Any]:
    """Headline numbers: traffic, spend vs the always-large baseline, escalations, latency."""
    esc = _escalated_ids()
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(C.cost_usd), 0.0),
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
            func.coalesce(func.sum(C.input_tokens), 0),
            func.coalesce(func.sum(C.output_tokens), 0),
            func.coalesce(func.sum(case((C.status >= 400, 1), else_=0)), 0),
            func.count(esc.c.escalated_id),
        )
        .select_from(LEDGER.outerjoin(esc, esc.c.escalated_id == C.request_id))
        .where(_window(span))
    ).one()
    requests, cost, baseline, tokens_in, tokens_out, errors, escalated = row
    latencies, ttfts = _latencies(conn, span, None)
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
        "latency": _latency_stats(latencies, ttfts),
    }


def _latencies(
    conn: Connection, span: TimeRange, model: str | None
) -> tuple[list[float], list[float]]:
    """Latency and TTFT of successful requests (errors fail fast and would flatter p50)."""
    query = select(C.latency_ms, C.ttft_ms).where(
        _window(span), C.status < 400, C.latency_ms.is_not(None)
    )
    if model is not None:
        query = query.where(C.model == model)
    rows = conn.execute(query).all()
    return [r[0] for r in rows], [r[1] for r in rows if r[1] is not None]


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
        .where(_window(span))
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
    esc = _escalated_ids()
    route = func.coalesce(C.router, DIRECT_ROUTE).label("route")
    rows = conn.execute(
        select(
            route,
            C.tier,
            func.count(),
            func.count(esc.c.escalated_id),
            func.coalesce(func.sum(C.cost_usd), 0.0),
            func.coalesce(func.sum(C.baseline_cost_usd), 0.0),
        )
        .select_from(LEDGER.outerjoin(esc, esc.c.escalated_id == C.request_id))
        .where(_window(span))
        .group_by(route, C.tier)
    ).all()
    merged: dict[str, dict[str, Any]] = {}
    for name, tier, requests, escalated, cost, baseline in rows:
        slot = merged.setdefault(
            name, {"route": name, "requests": 0, "escalated": 0, "cost": 0.0, "base": 0.0}
        )
        slot["requests"] += requests
        slot["escalated"] += escalated
        slot["cost"] += cost
        slot["base"] += baseline
        slot.setdefault("tiers", {})[tier or "none"] = requests
    result = []
    for slot in sorted(merged.values(), key=lambda s: -s["requests"]):
        cost, base = slot.pop("cost"), slot.pop("base")
        slot["escalation_rate"] = slot["escalated"] / slot["requests"]
        result.append({**slot, **_savings(cost, base)})
    return result


def latency_by_model(conn: Connection, span: TimeRange) -> list[dict[str, Any]]:
    """Latency and TTFT percentiles per serving model (successful requests only)."""
    rows = conn.execute(
        select(C.model, C.tier, C.latency_ms, C.ttft_ms).where(
            _window(span), C.status < 400, C.latency_ms.is_not(None)
        )
    ).all()
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
        .where(_window(span))
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
    """Time of the first request in the ledger (for `since=all`)."""
    return conn.execute(select(func.min(C.ts)).where(C.kind == "request")).scalar()
