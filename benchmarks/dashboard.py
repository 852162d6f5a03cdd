"""The ledger at volume: dashboard and report times, bytes per request, writer throughput.

Seeds a ledger (a temporary SQLite file, or the empty PostgreSQL database `--url` names) with
N requests over 30 days (`ledger_traffic`: the browser test's traffic mix, each request with a
prompt and an answer), in bulk by default: raw rows through the driver, rollups built by the
writer's own aggregation in the same transaction (`--seed insert` goes through
`LedgerStore.insert` instead, as the writer does, several times slower). Then measures, in one
run, each figure printed with the load average beside it:

- p50 of `GET /dashboard/api/all` (every panel) over HTTP for 24h / 7d / 30d windows, beside a
  plain `SELECT *` of the window's request rows (what a client-side dashboard would pull);
- `smallfirst report --since 30d` (in process, without interpreter start-up);
- ledger bytes per request with prompt text, then after `ledger prune` blanked it (VACUUMed);
- the writer's sustained rows/s with rollups and without them, side by side
  (`ledger_writer.py`, which also runs alone).

    nice .venv/bin/python benchmarks/dashboard.py --requests 1000000
    .venv/bin/python benchmarks/dashboard.py --url postgresql+psycopg://user@host/empty_db
    .venv/bin/python benchmarks/dashboard.py --url ... --seeded   # re-time an earlier run's ledger

`--seeded` measures only the dashboard and the report, on the ledger an earlier run left at
`--url` (its windows then end now, so they hold a little less of the seeded traffic; the
`SELECT *` baseline is not timed again).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from starlette.applications import Starlette
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_traffic import bulk_seed, seed, traffic
from ledger_writer import report as writer_report
from ledger_writer import writer_benchmark
from smallfirst.cli import app as cli
from smallfirst.config import RetentionConfig
from smallfirst.ledger import LedgerStore, partitions
from smallfirst.ledger.retention import prune
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer

WINDOWS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time in ms over `repeat` runs (after one warm-up)."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def load() -> str:
    """The 1-minute load average, printed beside each figure (the machine may be shared)."""
    return f"load {os.getloadavg()[0]:.1f}"


def table_bytes(store: LedgerStore, path: Path | None) -> dict[str, int]:
    """Bytes per table and in all. SQLite: dbstat and the file (WAL checkpointed first);
    PostgreSQL: each table with its indexes, TOAST and (requests) its partitions."""
    with store.engine.connect() as conn:
        if path is None:
            sizes = {
                name: int(conn.execute(text(SIZE_SQL), {"name": name}).scalar() or 0)
                for name in ("requests", "rollups")
            }
            sizes["file"] = int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            )
            return sizes
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        try:
            rows = conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")).all()
        except Exception:  # dbstat not compiled in: whole file only
            rows = []
    sizes = {name: int(size) for name, size in rows}
    sizes["file"] = path.stat().st_size
    return sizes


SIZE_SQL = """
SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c
WHERE c.relname = :name OR c.oid IN (
    SELECT inhrelid FROM pg_inherits WHERE inhparent = (:name)::regclass)
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--writer-rows", type=int, default=100_000)
    parser.add_argument("--writer-rounds", type=int, default=3)
    parser.add_argument(
        "--url", help="an empty PostgreSQL database to use (default: a temporary SQLite file)"
    )
    parser.add_argument(
        "--seed",
        choices=("bulk", "insert"),
        default="bulk",
        help="bulk: driver executemany/COPY + the writer's rollup aggregation per 50k rows; "
        "insert: through LedgerStore.insert, 20k rows per call",
    )
    parser.add_argument(
        "--seeded",
        action="store_true",
        help="time the dashboard and report on the ledger at --url as it is (written by an "
        "earlier run); seed, prune and the writer are skipped",
    )
    parser.add_argument(
        "--baseline-repeat",
        type=int,
        default=3,
        help="timed SELECT * runs per window (each reads the window's every row: minutes at 10M)",
    )
    parser.add_argument(
        "--skip-prune",
        action="store_true",
        help="leave out the prune and the pruned ledger's size (about 27 minutes on "
        "PostgreSQL at 10M); the writer still runs",
    )
    args = parser.parse_args(argv)
    if args.seeded and not args.url:
        parser.error("--seeded needs --url: the ledger an earlier run seeded")
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = None if args.url else Path(tmp) / "ledger.db"
        url = args.url or f"sqlite:///{path}"
        store = LedgerStore(url)
        now = time.time()
        if not args.seeded:
            with store.engine.begin() as conn:  # PostgreSQL: the months a gateway made as it ran
                if partitions.is_partitioned(conn):
                    partitions.ensure_months(conn, now - WINDOWS["30d"], now)
            start = time.perf_counter()
            rows = (bulk_seed if args.seed == "bulk" else seed)(store, traffic(args.requests, now))
            figures["seed_s"] = time.perf_counter() - start
            print(
                f"seeded {args.requests:,} requests ({rows:,} rows, {args.seed}) "
                f"in {figures['seed_s']:.1f} s [{load()}]"
            )
        if path is None and not args.seeded:  # PostgreSQL, freshly seeded
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
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

                def raw(query=query) -> int:  # streamed: 10M rows held at once need ~50 GB
                    with store.engine.connect().execution_options(yield_per=10_000) as conn:
                        return sum(len(chunk) for chunk in conn.execute(query).partitions())

                def api(name=name) -> None:
                    client.get("/dashboard/api/all", params={"since": name}).raise_for_status()

                with store.engine.connect() as conn:
                    counted = select(func.count()).select_from(query.subquery())
                    count = conn.execute(counted).scalar()
                figures[f"api_{name}_ms"] = api_ms = timed(api, args.repeat)
                # --seeded: the earlier run timed the SELECT * baseline already
                raw_ms = "-" if args.seeded else f"{timed(raw, args.baseline_repeat):.0f}"
                print(f"{name:<7} {count:>10,} {api_ms:>15.0f} {raw_ms:>12} [{load()}]")
        runner = CliRunner()

        def report() -> None:
            result = runner.invoke(cli, ["report", "--since", "30d", "--ledger", url, "--json"])
            assert result.exit_code == 0, result.output

        figures["report_ms"] = timed(report, args.repeat)
        print(f"smallfirst report --since 30d: {figures['report_ms']:.0f} ms [{load()}]")
        if args.seeded:
            store.close()
            return figures
        with_text = table_bytes(store, path)
        if args.skip_prune:
            per = with_text["file"] / args.requests
            figures["bytes_per_request_text"] = per
            print(f"ledger bytes per request, with prompt text: {per:.0f}")
        else:
            prune_and_measure(store, path, args.requests, with_text, figures)
        store.close()
        writer = writer_benchmark(Path(tmp), args.writer_rows, args.writer_rounds, args.url)
        figures["writer_rows_s"] = writer
        figures["rollups_cost"] = writer_report(writer)
        print(f"[{load()}]")
    return figures


def prune_and_measure(
    store: LedgerStore,
    path: Path | None,
    requests: int,
    with_text: dict[str, int],
    figures: dict[str, Any],
) -> None:
    """Blank every prompt, compact, and record bytes per request before and after."""
    start = time.perf_counter()
    prune(store, RetentionConfig(prompts_days=1e-9, rows_days=None, batch_rows=50_000))
    figures["prune_prompts_s"] = took = time.perf_counter() - start
    print(f"ledger prune (blank all prompt text): {took:.1f} s [{load()}]")
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM" if path else "VACUUM FULL"))
    without_text = table_bytes(store, path)
    for label, sizes in (("with prompt text", with_text), ("prompt text pruned", without_text)):
        per = sizes["file"] / requests
        parts = ", ".join(
            f"{name} {size / requests:.0f}"
            for name, size in sizes.items()
            if name in ("requests", "rollups")
        )
        figures["bytes_per_request_" + ("text" if sizes is with_text else "pruned")] = per
        print(f"ledger bytes per request, {label}: {per:.0f} ({parts})")


if __name__ == "__main__":
    main()
