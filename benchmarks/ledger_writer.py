"""The ledger writer's sustained rows/s with rollups and without them, side by side in one run.

Traffic as a gateway serving 1,000 requests/s writes it (`ledger_traffic.traffic`, squeezed
into rows/1,000 seconds) is recorded all at once into a `LedgerWriter`, which then stores it
as fast as it can (full batches); rows/s is rows over the time from the first `record` to the
end of `flush`. Each round runs both stores on fresh ledgers, alternating which goes first, so
noise from a shared machine hits both alike; the medians are compared.

- with rollups: `LedgerStore`, raw rows and their rollups in one transaction per batch;
- without: `RawOnlyStore`, the same raw insert alone (the writer before issue 24).

Then, as a gateway sees it (`--paced-seconds`): rows recorded at 1,000/s, and the process CPU
per row with each store; the difference is the CPU the rollups add to every request.

    nice .venv/bin/python benchmarks/ledger_writer.py --rows 100000 --rounds 5
    .venv/bin/python benchmarks/ledger_writer.py --url postgresql+psycopg://...  # PostgreSQL

`--url` names a PostgreSQL database; each run truncates its tables first (a SQLite file per run
otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ledger_traffic import traffic
from smallfirst.ledger import LedgerEntry, LedgerStore, LedgerWriter, rollups


class RawOnlyStore(LedgerStore):
    """The writer's store without rollups: the same raw insert alone."""

    def insert(self, rows: Iterable[dict[str, Any]]) -> int:
        rows = list(rows)
        if rows:
            with self.engine.begin() as conn:
                rollups.insert_raw(conn, self.requests, rows)
        return len(rows)


def writer_rows_per_s(store: LedgerStore, entries: list[LedgerEntry]) -> float:
    writer = LedgerWriter(store)
    start = time.perf_counter()
    for entry in entries:
        writer.record(entry)
    assert writer.flush(timeout=3600)
    elapsed = time.perf_counter() - start
    writer.close()
    assert writer.written == len(entries)
    return len(entries) / elapsed


def _fresh_store(kind: type[LedgerStore], url: str | None, tmp: Path, run: int) -> LedgerStore:
    if url is None:
        return kind(f"sqlite:///{tmp / f'writer-{kind.__name__}-{run}.db'}")
    store = kind(url)
    with store.engine.begin() as conn:
        conn.execute(text("TRUNCATE requests, rollups, task_rollups, route_rollups"))
    return store


def writer_benchmark(
    tmp: Path, rows: int, rounds: int, url: str | None = None
) -> dict[str, list[float]]:
    """rows/s per round for each store: {"with rollups": [...], "without": [...]}."""
    live = rows / 1000 / 86400  # as a gateway serving 1,000 requests/s writes them
    entries = list(traffic(rows, time.time(), days=live, seed=11))[:rows]
    kinds: list[tuple[str, type[LedgerStore]]] = [
        ("with rollups", LedgerStore),
        ("without", RawOnlyStore),
    ]
    results: dict[str, list[float]] = {name: [] for name, _ in kinds}
    for n in range(rounds):
        for name, kind in kinds if n % 2 == 0 else kinds[::-1]:
            store = _fresh_store(kind, url, tmp, n)
            results[name].append(writer_rows_per_s(store, entries))
            store.close()
    return results


def paced_cpu_us_per_row(store: LedgerStore, entries: list[LedgerEntry], rate: float) -> float:
    """Process CPU per row while rows arrive at `rate`/s (in bursts every 10 ms), as in a
    gateway: small batches every `LINGER_S`. The recording loop's own CPU is the same for
    both stores, so the difference is what the writer's rollups add to each request."""
    writer = LedgerWriter(store)
    burst = max(1, round(rate / 100))
    cpu, start = time.process_time(), time.perf_counter()
    for first in range(0, len(entries), burst):
        delay = start + first / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for entry in entries[first : first + burst]:
            writer.record(entry)
    assert writer.flush(timeout=3600)
    used = time.process_time() - cpu
    writer.close()
    return used / len(entries) * 1e6


def paced_benchmark(
    tmp: Path, seconds: float, rounds: int, rate: float = 1000.0, url: str | None = None
) -> dict[str, list[float]]:
    """CPU µs per row at `rate` rows/s, per round for each store (alternating first)."""
    count = int(seconds * rate)
    entries = list(traffic(count, time.time(), days=count / rate / 86400, seed=13))[:count]
    kinds: list[tuple[str, type[LedgerStore]]] = [
        ("with rollups", LedgerStore),
        ("without", RawOnlyStore),
    ]
    results: dict[str, list[float]] = {name: [] for name, _ in kinds}
    for n in range(rounds):
        for name, kind in kinds if n % 2 == 0 else kinds[::-1]:
            store = _fresh_store(kind, url, tmp, 100 + n)
            results[name].append(paced_cpu_us_per_row(store, entries, rate))
            store.close()
    return results


def report(results: dict[str, list[float]], say: Callable[[str], None] = print) -> float:
    """Print each round and the medians side by side; returns the rollups' cost (0.1 = -10%)."""
    with_rollups = statistics.median(results["with rollups"])
    without = statistics.median(results["without"])
    for name, runs in results.items():
        say(f"writer rows/s {name:<13} " + " ".join(f"{r:>8,.0f}" for r in runs))
    cost = 1 - with_rollups / without
    say(
        f"writer rows/s: with rollups {with_rollups:,.0f}, without {without:,.0f} "
        f"(median of {len(results['without'])}; rollups cost {cost:.0%} of the throughput)"
    )
    return cost


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", help="a PostgreSQL database (truncated); default SQLite files")
    parser.add_argument(
        "--paced-seconds",
        type=float,
        default=10.0,
        help="then record at 1,000 rows/s for this long and compare CPU per row (0: skip)",
    )
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results = writer_benchmark(Path(tmp), args.rows, args.rounds, args.url)
        figures["writer_rows_s"] = results
        figures["rollups_cost"] = report(results)
        print(f"[load {os.getloadavg()[0]:.1f}]")
        if args.paced_seconds > 0:
            paced = paced_benchmark(Path(tmp), args.paced_seconds, args.rounds, url=args.url)
            figures["paced_cpu_us_per_row"] = paced
            for name, runs in paced.items():
                print(
                    f"CPU us/row at 1,000 rows/s {name:<13} " + " ".join(f"{r:6.1f}" for r in runs)
                )
            with_rollups = statistics.median(paced["with rollups"])
            without = statistics.median(paced["without"])
            print(
                f"CPU us/row at 1,000 rows/s: with rollups {with_rollups:.1f}, without "
                f"{without:.1f} (+{with_rollups - without:.1f} us per row) "
                f"[load {os.getloadavg()[0]:.1f}]"
            )
    return figures


if __name__ == "__main__":
    main()
