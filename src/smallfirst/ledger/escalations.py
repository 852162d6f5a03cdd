"""Escalation rate and escalation cost per route, from the ledger's rollups.

A request escalated when one of its hops is an `escalate` step; what the escalation cost is
every hop after the first escalation (answers and checks on the higher rungs). Grouped by the
request row's route (`cascade-<name>`, a router name, or `direct`). The writer folds each
request's hops into its rollup group (`rollups.hop_totals`), so no hop row is read here.
"""

from __future__ import annotations

from typing import Any

from smallfirst.ledger import rollup_read
from smallfirst.ledger.store import LedgerStore


def escalation_summary(store: LedgerStore, since: float | None = None) -> list[dict[str, Any]]:
    """One row per route: requests, escalated, escalation_rate, escalation_cost_usd, cost_usd."""
    with store.engine.connect() as conn:
        groups = rollup_read.read(conn, since, None, ("router",), histograms=False)
    routes: dict[str, dict[str, Any]] = {}
    for (router, _status), totals in groups.items():
        name = router or "direct"
        row = routes.setdefault(
            name,
            {
                "route": name,
                "requests": 0,
                "escalated": 0,
                "escalation_cost_usd": 0.0,
                "cost_usd": 0.0,
            },
        )
        row["requests"] += totals.requests
        row["escalated"] += totals.escalated
        row["escalation_cost_usd"] += totals.escalation_cost_usd
        row["cost_usd"] += totals.cost_usd
    rows = [row for row in routes.values() if row["requests"]]
    for row in rows:
        row["escalation_rate"] = row["escalated"] / row["requests"]
    return sorted(rows, key=lambda r: -r["requests"])
