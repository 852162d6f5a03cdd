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

import functools
import random

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


MODELS = {  # name: (tier, $ per request at 300 in / 60 out tokens, typical latency ms)
    "gemma-3-270m": ("small", 0.0, 180.0),
    "qwen2.5-7b": ("medium", 0.00012, 650.0),
    "gpt-4o": ("large", 0.00135, 1400.0),
}
BASELINE_USD = MODELS["gpt-4o"][1]
ROUTES = [  # router (None = direct), weight, models it picks with their weights
    ("auto", 5, {"gemma-3-270m": 6, "qwen2.5-7b": 3, "gpt-4o": 1}),
    ("router-knn-0.3", 2, {"gemma-3-270m": 5, "gpt-4o": 2}),
    ("cheap-first", 2, {"gemma-3-270m": 1}),
    (None, 1, {"gpt-4o": 1, "qwen2.5-7b": 1}),
]
KEYS = ["team-search", "team-support", "batch-jobs", "playground"]
PRESET_EDGES_S = (3600, 86400, 7 * 86400, 30 * 86400)


def seed_traffic(store: LedgerStore, now: float, count: int = 400, days: float = 7.0) -> None:
    """Deterministic, realistic-looking traffic for the browser test and its screenshot:
    three tiers, four routes (one a cascade that escalates ~1 in 4), four keys, some errors."""
    rng = random.Random(7)
    entries: list[LedgerEntry] = []
    for n in range(count):
        age = rng.random() ** 1.6 * days * 86400  # busier recently
        if any(abs(age - edge) < 300 for edge in PRESET_EDGES_S):
            age += 600  # keep clear of the presets' edges: a test compares two reads in a row
        ts = now - age
        router, _, picks = rng.choices(ROUTES, weights=[r[1] for r in ROUTES])[0]
        model = rng.choices(list(picks), weights=list(picks.values()))[0]
        key = rng.choices(KEYS, weights=[5, 3, 2, 1])[0]
        escalated = router == "cheap-first" and rng.random() < 0.25
        if escalated:
            model = "gpt-4o"
        tier, price, typical = MODELS[model]
        status = 502 if rng.random() < 0.02 else 200
        latency = typical * rng.lognormvariate(0, 0.35) + (900 if escalated else 0)
        request = LedgerEntry(
            request_id=f"req-{n:05d}",
            ts=ts,
            key_id=f"id-{key}",
            key_name=key,
            requested_model=router or model,
            model=model,
            tier=tier,
            router=router,
            route_reason=_reason(router, model, escalated),
            input_tokens=300,
            output_tokens=60,
            cost_usd=price + (0.0 if not escalated else MODELS["gemma-3-270m"][1]),
            baseline_model="gpt-4o",
            baseline_cost_usd=BASELINE_USD,
            latency_ms=latency,
            ttft_ms=latency * 0.3,
            status=status,
            error="upstream 502" if status >= 400 else None,
        )
        entries.append(request)
        if router == "cheap-first":
            entries += _cascade_hops(request, escalated)
    store.insert(entry.as_row() for entry in entries)


def _reason(router: str | None, model: str, escalated: bool) -> str | None:
    if router is None:
        return None
    if router == "cheap-first":
        return "check failed: logprob 0.41 < 0.6 -> escalate" if escalated else "checks passed"
    return f"{router}: predicted quality ok on {model}"


def _cascade_hops(request: LedgerEntry, escalated: bool) -> list[LedgerEntry]:
    hop = functools.partial(LedgerEntry.for_hop, request, ts=request.ts)
    hops = [
        hop(1, "answer", model="gemma-3-270m", tier="small", outcome="ok"),
        hop(
            2,
            "check",
            model="gemma-3-270m",
            tier="small",
            outcome="failed" if escalated else "passed",
        ),
    ]
    if escalated:
        hops += [
            hop(3, "escalate", outcome="ok"),
            hop(4, "answer", model="gpt-4o", tier="large", outcome="ok", cost_usd=request.cost_usd),
        ]
    return hops
