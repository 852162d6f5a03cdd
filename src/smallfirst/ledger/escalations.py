"""Escalation rate and escalation cost per route, from the ledger's hop rows.

A request escalated when one of its hops is an `escalate` step; what the escalation cost is
every hop after the first escalation (answers and checks on the higher rungs). Grouped by the
request row's route (`cascade-<name>`, a router name, or `direct`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from smallfirst.ledger.store import LedgerStore


def escalation_summary(store: LedgerStore, since: float | None = None) -> list[dict[str, Any]]:
    """One row per route: requests, escalated, escalation_rate, escalation_cost_usd, cost_usd."""
    table = store.requests
    parents = select(
        table.c.request_id, func.coalesce(table.c.router, "direct").label("route"), table.c.cost_usd
    ).where(table.c.kind == "request")
    if since is not None:
        parents = parents.where(table.c.ts >= since)
    parents = parents.subquery("parents")
    first = (
        select(table.c.request_id, func.min(table.c.hop).label("first_hop"))
        .where(table.c.kind == "hop", table.c.step == "escalate")
        .group_by(table.c.request_id)
        .subquery("first_escalation")
    )
    after = (
        select(table.c.request_id, func.sum(table.c.cost_usd).label("escalation_cost"))
        .join(first, first.c.request_id == table.c.request_id)
        .where(table.c.kind == "hop", table.c.hop > first.c.first_hop)
        .group_by(table.c.request_id)
        .subquery("escalation_cost")
    )
    query = (
        select(
            parents.c.route,
            func.count().label("requests"),
            func.count(first.c.request_id).label("escalated"),
            func.sum(func.coalesce(after.c.escalation_cost, 0.0)).label("escalation_cost_usd"),
            func.sum(parents.c.cost_usd).label("cost_usd"),
        )
        .select_from(
            parents.outerjoin(first, first.c.request_id == parents.c.request_id).outerjoin(
                after, and_(after.c.request_id == parents.c.request_id)
            )
        )
        .group_by(parents.c.route)
    )
    with store.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["escalated"] = int(row["escalated"] or 0)
        row["escalation_cost_usd"] = float(row["escalation_cost_usd"] or 0.0)
        row["cost_usd"] = float(row["cost_usd"] or 0.0)
        row["escalation_rate"] = row["escalated"] / row["requests"] if row["requests"] else 0.0
    return sorted(rows, key=lambda r: -r["requests"])
