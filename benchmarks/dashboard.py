"""How long the dashboard takes to answer on a big ledger, beside a plain read of the same rows.

Seeds a SQLite ledger with N requests over 30 days (the browser test's traffic generator:
three tiers, four routes incl. an escalating cascade with hop rows, four keys), then times
`/dashboard/api/all` (every panel: summary, series, routes, latency, keys, recent) over HTTP
for 24h / 7d / 30d windows. Baseline, measured in the same run: fetching the window's request
rows with a plain `SELECT *` (what any client-side dashboard would have to pull first).

    nice .venv/bin/python benchmarks/dashboard.py --requests 100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server.dashboard_seed import seed_traffic

from smallfirst.ledger import LedgerStore
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer

WINDOWS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def timed(fn, repeat: int) -> float:
    """Median wall time in ms over `repeat` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = LedgerStore(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        now = time.time()
        start = time.perf_counter()
        seed_traffic(store, now, count=args.requests, days=30)
        print(f"seeded {args.requests:,} requests in {time.perf_counter() - start:.1f} s")
        app = Starlette()
        mount_dashboard(app, store.engine)
        table = store.requests
        print(f"{'window':<7} {'rows':>8} {'api/all ms':>11} {'SELECT * ms':>12}")
        with (
            BackgroundServer(app) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            for name, span in WINDOWS.items():
                query = select(table).where(table.c.kind == "request", table.c.ts >= now - span)

                def raw(query=query) -> int:
                    with store.engine.connect() as conn:
                        return len(conn.execute(query).all())

                def api(name=name) -> None:
                    client.get("/dashboard/api/all", params={"since": name}).raise_for_status()

                rows = raw()
                print(
                    f"{name:<7} {rows:>8,} {timed(api, args.repeat):>11.0f} "
                    f"{timed(raw, args.repeat):>12.0f}"
                )
        store.close()


if __name__ == "__main__":
    main()
