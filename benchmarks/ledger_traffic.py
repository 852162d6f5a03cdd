"""Ledger traffic for the ledger benchmarks: requests over 30 days, and two ways to store them.

The mix is the dashboard browser test's: three tiers, four routes incl. an escalating cascade
with hop rows, four keys, ~2% errors, each request with a ~550-character prompt and an answer;
~5% of the successful requests are response-cache hits (outcome `cache`, $0, no tokens, no hops,
their baseline cost saved), drawn from a random stream of their own so that every other request
is the same as before hits were added.

- `seed` stores through `LedgerStore.insert`, exactly as the ledger writer stores a flush;
- `bulk_seed` is for 10M-request ledgers: raw rows go to the driver in large executemany
  batches (PostgreSQL: COPY) and the rollups are built with the writer's own aggregation
  (`rollups.aggregate` + `rollups.upsert`, and the task and route rollups' increments) in the
  same transaction, so the ledger ends up the same as the writer's, several times faster.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from typing import Any

from tests.server.dashboard_seed import BASELINE_USD, KEYS, MODELS, ROUTES

from smallfirst.ledger import LedgerEntry, LedgerStore, rollups, route_rollups, task_rollups

SEED_CHUNK = 20_000
BULK_CHUNK = 50_000
CACHE_SHARE = 0.05
PROMPT = "Classify the sentiment of this product review: " + "great value, works well. " * 20
ANSWER = "positive"


def ages(count: int, seed: int) -> Iterator[float]:
    """`count` sorted uniform draws, generated lazily (normalised sums of exponential gaps), so
    rows come in time order as a gateway writes them, without holding them all."""
    first = random.Random(seed)
    total = sum(first.expovariate(1.0) for _ in range(count + 1))
    rng, running = random.Random(seed), 0.0
    for _ in range(count):
        running += rng.expovariate(1.0)
        yield running / total


def traffic(count: int, now: float, days: float = 30.0, seed: int = 7) -> Iterator[LedgerEntry]:
    """Requests (busier recently), newest first, each followed by its cascade hops."""
    rng, hits = random.Random(seed), random.Random(seed + 2)
    for n, share in enumerate(ages(count, seed + 1)):
        ts = now - share**1.6 * days * 86400
        router, _, picks = rng.choices(ROUTES, weights=[r[1] for r in ROUTES])[0]
        model = rng.choices(list(picks), weights=list(picks.values()))[0]
        key = rng.choices(KEYS, weights=[5, 3, 2, 1])[0]
        escalated = router == "cheap-first" and rng.random() < 0.25
        model = "gpt-4o" if escalated else model
        tier, price, typical = MODELS[model]
        status = 502 if rng.random() < 0.02 else 200
        latency = typical * rng.lognormvariate(0, 0.35) + (900 if escalated else 0)
        request = LedgerEntry(
            request_id=f"req-{n:08d}",
            ts=ts,
            key_id=f"id-{key}",
            key_name=key,
            requested_model=router or model,
            model=model,
            tier=tier,
            router=router,
            route_reason=f"{router}: predicted quality ok on {model}" if router else None,
            input_tokens=300,
            output_tokens=60,
            cost_usd=price,
            baseline_model="gpt-4o",
            baseline_cost_usd=BASELINE_USD,
            latency_ms=latency,
            ttft_ms=latency * 0.3,
            status=status,
            error="upstream 502" if status >= 400 else None,
            prompt=PROMPT,
            response=ANSWER,
        )
        if status == 200 and hits.random() < CACHE_SHARE:
            yield _as_hit(request)
            continue
        yield request
        if router == "cheap-first":
            hop = functools.partial(LedgerEntry.for_hop, request, ts=ts)
            yield hop(1, "answer", model="gemma-3-270m", tier="small", outcome="ok")
            yield hop(2, "check", model="gemma-3-270m", tier="small", outcome="passed")
            if escalated:
                yield hop(3, "escalate", outcome="ok")
                yield hop(4, "answer", model="gpt-4o", tier="large", cost_usd=price)


def _as_hit(request: LedgerEntry) -> LedgerEntry:
    """The request answered from the response cache instead (as `cache/gateway.py` records
    a hit: the stored answer's model, no routing, $0 and no tokens, the baseline cost kept)."""
    request.outcome, request.route_reason, request.router = "cache", "cache hit (exact)", None
    request.input_tokens = request.output_tokens = 0
    request.cost_usd = 0.0
    request.latency_ms = request.ttft_ms = 2.0
    return request


def seed(store: LedgerStore, entries: Iterator[LedgerEntry]) -> int:
    """Store through `LedgerStore.insert` (the writer's path) in chunks; returns rows stored."""
    rows, chunk = 0, []
    for entry in entries:
        chunk.append(entry.as_row())
        if len(chunk) >= SEED_CHUNK:
            rows += store.insert(chunk)
            chunk = []
    return rows + store.insert(chunk)


def whole_requests(entries: Iterator[LedgerEntry], size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows in chunks of about `size` that never split a request from its hops, so each
    chunk's rollups need no look-up of rows stored before it."""
    chunk: list[dict[str, Any]] = []
    for entry in entries:
        if entry.kind == "request" and len(chunk) >= size:
            yield chunk
            chunk = []
        chunk.append(entry.as_row())
    if chunk:
        yield chunk


def bulk_seed(store: LedgerStore, entries: Iterator[LedgerEntry]) -> int:
    """Store brand-new traffic fast: one transaction per chunk holding its raw rows (driver
    executemany, or COPY on PostgreSQL) and its rollup increments. Returns rows stored."""
    columns = [column.name for column in store.requests.columns if column.name != "id"]
    stored = 0
    for chunk in whole_requests(entries, BULK_CHUNK):
        values = [tuple(row[name] for name in columns) for row in chunk]
        with store.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY requests ({', '.join(columns)}) FROM STDIN") as copy:
                    for value in values:
                        copy.write_row(value)
            else:
                marks = ", ".join("?" * len(columns))
                sql = f"INSERT INTO requests ({', '.join(columns)}) VALUES ({marks})"
                conn.exec_driver_sql(sql, values)
            rollups.upsert(conn, store.rollups, rollups.aggregate(chunk))
            task_rollups.upsert(conn, store.task_rollups, task_rollups.increments(chunk))
            route_rollups.upsert(conn, store.route_rollups, route_rollups.increments(chunk))
        stored += len(chunk)
    return stored
