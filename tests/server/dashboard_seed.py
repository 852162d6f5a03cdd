"""A small hand-checkable ledger for the dashboard tests (numbers worked out in the tests).

Five requests inside the window, one outside it, one cascade that escalated:

| id | key   | router | served (tier)   | $     | baseline $ | latency | TTFT | status |
|----|-------|--------|-------------------|-------|------------|---------|------|--------|
| r1 | alice | auto   | gemma (small)   | 0     | 0.010      | 100     | 20   | 200    |
| r2 | alice | auto   | gemma (small)   | 0     | 0.020      | 200     | 30   | 200    |
| r3 | bob   | auto   | gpt-big (large) | 0.030 | 0.030      | 900     | 400  | 200    | escalated
| r4 | bob   | -      | gpt-big (large) | 0.050 | 0.050      | 400     | 100  | 200    |
| r5 | -     | auto   | gemma (small)   | 0     | 0          | 50      | -    | 502    |
| r0 | alice | auto   | gpt-big (large) | 1.000 | 1.000      | 999     | 99   | 200    | 2 days old
"""

from __future__ import annotations

from smallfirst.ledger import LedgerEntry, LedgerStore

HOUR = 3600.0


def seed_ledger(store: LedgerStore, now: float) -> None:
    """Write the rows above, `now` being the end of the window the tests look at."""
    rows = [
        _request("r1", now - 1 * HOUR, "alice", "auto", "gemma", "small", 0.0, 0.010, 100, 20),
        _request("r2", now - 2 * HOUR, "alice", "auto", "gemma", "small", 0.0, 0.020, 200, 30),
        _request("r3", now - 3 * HOUR, "bob", "auto", "gpt-big", "large", 0.030, 0.030, 900, 400),
        _request("r4", now - 4 * HOUR, "bob", None, "gpt-big", "large", 0.050, 0.050, 400, 100),
        _request("r5", now - 5 * HOUR, None, "auto", "gemma", "small", 0.0, 0.0, 50, None, 502),
        _request("r0", now - 48 * HOUR, "alice", "auto", "gpt-big", "large", 1.0, 1.0, 999, 99),
    ]
    cascade = rows[2]
    hops = [
        LedgerEntry.for_hop(
            cascade, 1, "answer", model="gemma", tier="small", outcome="ok", ts=cascade.ts
        ),
        LedgerEntry.for_hop(
            cascade, 2, "check", model="gemma", tier="small", outcome="failed", ts=cascade.ts
        ),
        LedgerEntry.for_hop(cascade, 3, "escalate", outcome="ok", ts=cascade.ts),
        LedgerEntry.for_hop(
            cascade,
            4,
            "answer",
            model="gpt-big",
            tier="large",
            outcome="ok",
            cost_usd=0.030,
            ts=cascade.ts,
        ),
    ]
    store.insert(entry.as_row() for entry in rows + hops)


def _request(
    request_id: str,
    ts: float,
    key: str | None,
    router: str | None,
    model: str,
    tier: str,
    cost: float,
    baseline: float,
    latency: float,
    ttft: float | None,
    status: int = 200,
) -> LedgerEntry:
    return LedgerEntry(
        request_id=request_id,
        ts=ts,
        key_id=f"id-{key}" if key else None,
        key_name=key,
        requested_model=router or model,
        model=model,
        tier=tier,
        router=router,
        route_reason="rule: short prompt -> small" if router else None,
        input_tokens=100,
        output_tokens=10,
        cost_usd=cost,
        baseline_model="gpt-big",
        baseline_cost_usd=baseline,
        latency_ms=latency,
        ttft_ms=ttft,
        status=status,
        error="upstream reset" if status >= 400 else None,
    )
