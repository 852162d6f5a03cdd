"""Spend, savings against the baseline model, and traffic share per tier, from the ledger.

Sums run in SQL over `request` rows (hops are details of a request, never counted twice).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select

from smallfirst.errors import InvalidRequestError
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
    table = store.requests
    where = [table.c.kind == "request"]
    if since is not None:
        where.append(table.c.ts >= since)
    columns = [
        func.count().label("requests"),
        func.sum(case((table.c.status >= 400, 1), else_=0)).label("errors"),
        func.sum(table.c.input_tokens).label("input_tokens"),
        func.sum(table.c.output_tokens).label("output_tokens"),
        func.sum(table.c.cost_usd).label("cost_usd"),
        func.sum(table.c.baseline_cost_usd).label("baseline_cost_usd"),
    ]
    by_tier = select(table.c.tier, *columns).where(*where).group_by(table.c.tier)
    by_model = select(table.c.model, table.c.tier, *columns).where(*where)
    by_model = by_model.group_by(table.c.model, table.c.tier)
    with store.engine.connect() as conn:
        totals = _clean(conn.execute(select(*columns).where(*where)).one()._mapping)
        tiers = [_clean(row._mapping) for row in conn.execute(by_tier)]
        models = [_clean(row._mapping) for row in conn.execute(by_model)]
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
    }


def _clean(row: Any) -> dict[str, Any]:
    """SQL sums are NULL over no rows; a report wants zeros."""
    out = dict(row)
    for key in ("requests", "errors", "input_tokens", "output_tokens"):
        out[key] = int(out.get(key) or 0)
    for key in ("cost_usd", "baseline_cost_usd"):
        out[key] = float(out.get(key) or 0.0)
    return out
