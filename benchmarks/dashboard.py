"""The ledger at volume: dashboard and report times, bytes per request, writer throughput.

Seeds a SQLite ledger in bulk with N requests over 30 days (the browser test's traffic mix:
three tiers, four routes incl. an escalating cascade with hop rows, four keys, ~2% errors;
each request with a prompt and an answer), through `LedgerStore.insert`, so rollups are kept
as the gateway keeps them. Then measures, in one run:

- p50 of `GET /dashboard/api/all` (every panel) over HTTP for 24h / 7d / 30d windows, beside a
  plain `SELECT *` of the window's request rows (what a client-side dashboard would pull);
- `smallfirst report --since 30d` (in process, without interpreter start-up);
- ledger bytes per request with prompt text, then after `ledger prune` blanked it (VACUUMed);
- the writer's sustained rows/s with rollups and without them (raw insert only), alternating
  runs on a fresh ledger, for traffic arriving at 1,000 requests/s.

    nice .venv/bin/python benchmarks/dashboard.py --requests 1000000
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text
from starlette.applications import Starlette
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server.dashboard_seed import BASELINE_USD, KEYS, MODELS, ROUTES

from smallfirst.cli import app as cli
from smallfirst.config import RetentionConfig
from smallfirst.ledger import LedgerEntry, LedgerStore, LedgerWriter
from smallfirst.ledger.retention import prune
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer

WINDOWS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SEED_CHUNK = 20_000
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
    """Requests (busier recently), newest first, and cascade hops, generated lazily."""
    rng = random.Random(seed)
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
        yield request
        if router == "cheap-first":
            hop = functools.partial(LedgerEntry.for_hop, request, ts=ts)
            yield hop(1, "answer", model="gemma-3-270m", tier="small", outcome="ok")
            yield hop(2, "check", model="gemma-3-270m", tier="small", outcome="passed")
            if escalated:
                yield hop(3, "escalate", outcome="ok")
                yield hop(4, "answer", model="gpt-4o", tier="large", cost_usd=price)


def seed(store: LedgerStore, entries: Iterator[LedgerEntry]) -> int:
    rows, chunk = 0, []
    for entry in entries:
        chunk.append(entry.as_row())
        if len(chunk) >= SEED_CHUNK:
            rows += store.insert(chunk)
            chunk = []
    return rows + store.insert(chunk)


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time in ms over `repeat` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def table_bytes(store: LedgerStore, path: Path) -> dict[str, int]:
    """Bytes per table (SQLite's dbstat) and of the whole file (WAL checkpointed first)."""
    with store.engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        try:
            rows = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        except Exception:  # dbstat not compiled in: whole file only
            rows = []
    sizes = {name: int(size) for name, size in rows}
    sizes["file"] = path.stat().st_size
    return sizes


class RawOnlyStore(LedgerStore):
    """The writer's store without rollups: the raw insert alone (the 'before' of issue 24)."""

    def insert(self, rows) -> int:
        rows = list(rows)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.requests.insert(), rows)
        return len(rows)


def writer_rows_per_s(store: LedgerStore, entries: list[LedgerEntry]) -> float:
    writer = LedgerWriter(store)
    start = time.perf_counter()
    for entry in entries:
        writer.record(entry)
    assert writer.flush(timeout=3600)
    elapsed = time.perf_counter() - start
    writer.close()
    return len(entries) / elapsed


def writer_benchmark(tmp: Path, rows: int, rounds: int) -> tuple[float, float]:
    """Median rows/s (with rollups, without), alternating fresh ledgers to share the noise."""
    live = rows / 1000 / 86400  # as a gateway serving 1,000 requests/s writes them
    entries = list(traffic(rows, time.time(), days=live, seed=11))[:rows]
    with_rollups, without = [], []
    for n in range(rounds):
        for kind, results in ((LedgerStore, with_rollups), (RawOnlyStore, without)):
            store = kind(f"sqlite:///{tmp / f'writer-{kind.__name__}-{n}.db'}")
            results.append(writer_rows_per_s(store, entries))
            store.close()
    return statistics.median(with_rollups), statistics.median(without)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--writer-rows", type=int, default=100_000)
    parser.add_argument("--writer-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        url = f"sqlite:///{path}"
        store = LedgerStore(url)
        now = time.time()
        start = time.perf_counter()
        rows = seed(store, traffic(args.requests, now))
        figures["seed_s"] = time.perf_counter() - start
        print(f"seeded {args.requests:,} requests ({rows:,} rows) in {figures['seed_s']:.1f} s")
        app = Starlette()
        mount_dashboard(app, store.engine)
        table = store.requests
        print(f"{'window':<7} {'rows':>10} {'api/all p50 ms':>15} {'SELECT * ms':>12}")
        with (
            BackgroundServer(app) as server,
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            for name, span in WINDOWS.items():
                query = select(table).where(table.c.kind == "request", table.c.ts >= now - span)

                def raw(query=query) -> int:
                    with store.engine.connect() as conn:
                        return len(conn.execute(query).all())

                def api(name=name) -> None:
                    client.get("/dashboard/api/all", params={"since": name}).raise_for_status()

                count = raw()
                figures[f"api_{name}_ms"] = api_ms = timed(api, args.repeat)
                raw_ms = timed(raw, min(args.repeat, 3))
                print(f"{name:<7} {count:>10,} {api_ms:>15.0f} {raw_ms:>12.0f}")
        runner = CliRunner()

        def report() -> None:
            result = runner.invoke(cli, ["report", "--since", "30d", "--ledger", url, "--json"])
            assert result.exit_code == 0, result.output

        figures["report_ms"] = timed(report, args.repeat)
        print(f"smallfirst report --since 30d: {figures['report_ms']:.0f} ms")
        with_text = table_bytes(store, path)
        prune(store, RetentionConfig(prompts_days=1e-9, rows_days=None, batch_rows=50_000))
        with store.engine.connect() as conn:
            conn.execute(text("VACUUM"))
        without_text = table_bytes(store, path)
        for label, sizes in (("with prompt text", with_text), ("prompt text pruned", without_text)):
            per = sizes["file"] / args.requests
            parts = ", ".join(
                f"{name} {size / args.requests:.0f}"
                for name, size in sizes.items()
                if name in ("requests", "rollups")
            )
            figures["bytes_per_request_" + ("text" if sizes is with_text else "pruned")] = per
            print(f"ledger bytes per request, {label}: {per:.0f} ({parts})")
        store.close()
        with_rollups, without = writer_benchmark(Path(tmp), args.writer_rows, args.writer_rounds)
        figures["writer_rows_s"] = (with_rollups, without)
        print(
            f"writer rows/s: with rollups {with_rollups:,.0f}, without {without:,.0f} "
            f"({with_rollups / without - 1:+.0%})"
        )
    return figures


if __name__ == "__main__":
    main()
