"""Spend, savings against the baseline model, and traffic share per tier, from the ledger.

Read from the rollups (sums over `request` rows; hops never count twice), so the report takes
the same time at any traffic and its totals survive the pruning of raw rows.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

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


CACHED_ENDPOINTS = ("chat", "completions")
"""The endpoints the response cache answers: a route's hit rate is over their requests."""


def cache_by_route(store: LedgerStore, since: float | None = None) -> list[dict[str, Any]]:
    """Response-cache hits (outcome `cache`) per route, their share of the route's requests
    and the $ they saved (a hit costs $0, so its baseline cost is all saving). Read from the
    route rollups like the rest of the report, so pruning raw rows never changes it."""
    with store.engine.connect() as conn:
        groups = rollup_read.read(
            conn, since, None, ("endpoint", "requested_model"), source=rollup_read.ROUTES
        )
    routes: dict[str, Totals] = defaultdict(Totals)
    for (endpoint, route, _status_class), measures in groups.items():
        if endpoint in CACHED_ENDPOINTS and route is not None:
            routes[route].add(measures)
    out = [
        {"route": route, "requests": t.requests, "hits": t.cache_hits,
         "hit_rate": t.cache_hits / t.requests, "saved_usd": t.cache_saved_usd}
        for route, t in routes.items()
        if t.cache_hits
    ]  # fmt: skip
    return sorted(out, key=lambda row: (-row["saved_usd"], row["route"]))


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
