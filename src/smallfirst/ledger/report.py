"""Spend, savings against the baseline model, and traffic share per tier, from the ledger.

Read from the rollups (sums over `request` rows; hops never count twice), so the report takes
the same time at any traffic and its totals survive the pruning of raw rows.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select

from smallfirst.errors import InvalidRequestError
from smallfirst.ledger import rollup_read
from smallfirst.ledger.rollups import Totals
from smallfirst.ledger.store import LedgerStore

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """`30m`, `24h`, `7d`, `2w` ago, or an ISO date/time (UTC unless it names a zone)."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        return now - float(match.group(1)) * UNITS[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequestError(
            f"--since {text!r}: use a duration like 30m, 24h, 7d or an ISO date like 2026-11-01"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def summarize(store: LedgerStore, since: float | None = None) -> dict[str, Any]:
    with store.engine.connect() as conn:
        groups = rollup_read.read(conn, since, None, ("model", "tier"), histograms=False)
    by_model: dict[tuple[Any, Any], dict[str, Any]] = {}
    by_tier: dict[Any, dict[str, Any]] = {}
    totals = _empty()
    for (model, tier, status_class), measures in groups.items():
        for row in (
            by_model.setdefault((model, tier), _empty(model=model, tier=tier)),
            by_tier.setdefault(tier, _empty(tier=tier)),
            totals,
        ):
            _add(row, measures, errors=status_class >= 4)
    tiers, models = list(by_tier.values()), list(by_model.values())
    served = sum(t["requests"] for t in tiers if t["tier"] is not None) or 1
    for row in (*tiers, *models):
        known = row.get("model", row["tier"]) is not None and row["tier"] is not None
        row["share"] = row["requests"] / served if known else None
    totals["savings_usd"] = totals["baseline_cost_usd"] - totals["cost_usd"]
    baseline = totals["baseline_cost_usd"]
    totals["savings_share"] = totals["savings_usd"] / baseline if baseline else None
    return {
        "since": since,
        "totals": totals,
        "tiers": sorted(tiers, key=lambda t: -t["requests"]),
        "models": sorted(models, key=lambda m: -m["requests"]),
        "cache": cache_by_route(store, since),
    }


def cache_by_route(store: LedgerStore, since: float | None = None) -> list[dict[str, Any]]:
    """Response-cache hits (outcome `cache`) per route, their share of the route's requests
    and the $ they saved (a hit costs $0, so its baseline cost is all saving). Read from the
    raw rows (the rollups do not keep outcomes), so it covers `ledger.retention.rows_days`."""
    table = store.requests
    hits_only = select(table.c.requested_model).where(table.c.outcome == "cache")
    if since is not None:
        hits_only = hits_only.where(table.c.ts >= since)
    with store.engine.connect() as conn:  # the partial index answers this (m009)
        routes = sorted({route for (route,) in conn.execute(hits_only.distinct())})
    if not routes:
        return []
    hit = case((table.c.outcome == "cache", 1), else_=0)
    saved = case((table.c.outcome == "cache", table.c.baseline_cost_usd), else_=0.0)
    query = (
        select(table.c.requested_model, func.count(), func.sum(hit), func.sum(saved))
        .where(table.c.kind == "request", table.c.endpoint.in_(("chat", "completions")))
        .where(table.c.requested_model.in_(routes))
        .group_by(table.c.requested_model)
    )
    if since is not None:
        query = query.where(table.c.ts >= since)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = [
        {"route": route, "requests": int(n), "hits": int(hits or 0),
         "hit_rate": int(hits or 0) / int(n), "saved_usd": float(money or 0.0)}
        for route, n, hits, money in rows
        if hits
    ]  # fmt: skip
    return sorted(out, key=lambda row: -row["saved_usd"])


def _empty(**labels: Any) -> dict[str, Any]:
    zeros = {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0}
    zeros |= {"cached_input_tokens": 0, "cache_write_tokens": 0}
    return {**labels, **zeros, "cost_usd": 0.0, "baseline_cost_usd": 0.0}


def _add(row: dict[str, Any], measures: Totals, errors: bool) -> None:
    row["requests"] += measures.requests
    row["errors"] += measures.requests if errors else 0
    row["input_tokens"] += measures.input_tokens
    row["output_tokens"] += measures.output_tokens
    row["cached_input_tokens"] += measures.cached_input_tokens
    row["cache_write_tokens"] += measures.cache_write_tokens
    row["cost_usd"] += measures.cost_usd
    row["baseline_cost_usd"] += measures.baseline_cost_usd
