"""A hop of the failover policy or a cascade (`routing.hops.Hop`) as a ledger hop row.

One conversion for every writer: the gateway's requests and cascades, `Client` and batch
items all store a retry, fallback, rung or check the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smallfirst.ledger.entry import LedgerEntry

if TYPE_CHECKING:
    from smallfirst.routing.hops import Hop


def hop_entry(parent: LedgerEntry, hop: Hop) -> LedgerEntry:
    detail = f"{hop.check}: {hop.detail}" if hop.check else hop.detail
    if hop.threshold is not None:
        detail += f" (threshold {hop.threshold:.4g})"
    return LedgerEntry.for_hop(
        parent,
        hop.index + 1,
        hop.kind,
        outcome=hop.outcome,
        ts=hop.at,
        model=hop.model,
        tier=hop.tier,
        route_reason=detail,
        route_score=hop.score,
        input_tokens=hop.input_tokens,
        output_tokens=hop.output_tokens,
        cost_usd=hop.cost_usd,
        latency_ms=hop.latency_s * 1000 if hop.latency_s else None,
        status=hop.error_status or 200,
        error=f"{hop.error_type}: {hop.detail}" if hop.error_type else None,
    )
