"""The ledger writer's sustained rows/s with rollups and without them, side by side in one run.

Traffic as a gateway serving 1,000 requests/s writes it (`ledger_traffic.traffic`, squeezed
into rows/1,000 seconds) is recorded all at once into a `LedgerWriter`, which then stores it
as fast as it can (full batches); rows/s is rows over the time from the first `record` to the
end of `flush`. Each round runs both stores on fresh ledgers, alternating which goes first, so
noise from a shared machine hits both alike; the medians are compared.

- with rollups: `LedgerStore`, raw rows and their rollups in one transaction per batch;
- without: `RawOnlyStore`, the same raw insert alone (the writer before issue 24).

    nice .venv/bin/python benchmarks/ledger_writer.py --rows 100000 --rounds 5
    .venv/bin/python benchmarks/ledger_writer.py --url postgresql+psycopg://...  # PostgreSQL

`--url` names a PostgreSQL database; each run truncates its tables first (a SQLite file per run
otherwise).
"""

from __future__ import annotations

import argparse
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
        conn.execute(text("TRUNCATE requests, rollups"))
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
    parser.add_argument("--url", help="a server database (emptied first); default SQLite files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = writer_benchmark(Path(tmp), args.rows, args.rounds, args.url)
    cost = report(results)
    return {"writer_rows_s": results, "rollups_cost": cost}


if __name__ == "__main__":
    main()
