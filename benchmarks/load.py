"""Sustained load on the gateway: locust users against `smallfirst serve` and a local upstream.

    python benchmarks/load.py [--users 50] [--seconds 60] [--spawn-rate 50]
        [--replicas 2 --ledger-url postgresql+psycopg://... --redis-url redis://...]

Starts, on loopback only and as subprocesses: the scripted OpenAI-compatible upstream (answers
at once), `smallfirst serve` with auth on and a SQLite ledger, then locust headless
(`benchmarks/locustfile.py`) for `--seconds`. After a clean gateway shutdown it counts the
ledger rows: the promise is zero failed requests and exactly one row per request locust sent.
With `--replicas N` it starts N gateways on the same ledger (and Redis, when given) and spreads
the users evenly over them. Prints a table; the exit status is 1 when a promise is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from smallfirst.ledger import LedgerStore
from smallfirst.ledger.keys import KeyStore
from smallfirst.testing.processes import (
    ServerProcess,
    gateway_config,
    gateway_process,
    start_upstream,
)

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


@dataclass
class LoadResult:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def read_stats(json_path: Path, seconds: float) -> list[LoadResult]:
    """Locust's final `--json-file` stats: one result per request name plus `Aggregated`
    (its CSV is written periodically and can miss the last second; the JSON is final)."""
    entries = json.loads(json_path.read_text())
    results = [_result(e["name"], [e], seconds) for e in entries]
    results.append(_result("Aggregated", entries, seconds))
    return results


def _result(name: str, entries: list[dict[str, Any]], seconds: float) -> LoadResult:
    times: dict[float, int] = {}
    for entry in entries:
        for ms, count in entry["response_times"].items():
            times[float(ms)] = times.get(float(ms), 0) + count
    requests = sum(e["num_requests"] for e in entries)
    return LoadResult(
        name,
        requests,
        sum(e["num_failures"] for e in entries),
        requests / seconds,
        _percentile(times, 0.50),
        _percentile(times, 0.95),
        _percentile(times, 0.99),
    )


def _percentile(times: dict[float, int], q: float) -> float:
    """The response time below which a share `q` of the requests fall (locust's buckets)."""
    total = sum(times.values())
    seen = 0
    for ms in sorted(times):
        seen += times[ms]
        if seen >= q * total:
            return ms
    return float("nan")


def run_locust(
    urls: list[str], key: str, args: argparse.Namespace, workdir: Path
) -> list[LoadResult]:
    """Locust's users are spread evenly over `urls` (the replicas; no load balancer needed)."""
    prefix = workdir / "locust"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    command += ["--host", urls[0], "-u", str(args.users), "-r", str(args.spawn_rate)]
    command += ["-t", f"{args.seconds}s", "--json-file", str(prefix), "--only-summary"]
    command += ["--stop-timeout", "10", "--loglevel", "WARNING"]
    env = {**os.environ, "SMALLFIRST_LOAD_KEY": key, "SMALLFIRST_LOAD_HOSTS": ",".join(urls)}
    with (workdir / "locust.log").open("w") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    stats = Path(f"{prefix}.json")
    if not stats.exists() or not json.loads(stats.read_text()):
        raise RuntimeError("locust sent nothing:\n" + (workdir / "locust.log").read_text()[-2000:])
    return read_stats(stats, args.seconds)


def ledger_rows(url: str) -> tuple[int, int]:
    """(request rows, rows with status 200) in the ledger."""
    store = LedgerStore(url)
    table = store.requests
    with store.engine.connect() as conn:
        total = conn.execute(select(func.count()).where(table.c.kind == "request")).scalar_one()
        ok = conn.execute(
            select(func.count()).where(table.c.kind == "request", table.c.status == 200)
        ).scalar_one()
    store.close()
    return int(total), int(ok)


def run(args: argparse.Namespace, workdir: Path) -> tuple[list[LoadResult], tuple[int, int]]:
    ledger_url = args.ledger_url or f"sqlite:///{workdir / 'ledger.db'}"
    store = LedgerStore(ledger_url)
    _key, secret = KeyStore(store).create("load", rpm=10_000_000)
    store.close()
    upstream = start_upstream(workdir)
    gateways: list[ServerProcess] = []
    try:
        server = {"auth": True, "ledger_url": ledger_url, "redis_url": args.redis_url}
        config = gateway_config(workdir, upstream.url, server)
        gateways = [gateway_process(workdir, config) for _ in range(args.replicas)]
        for gateway in gateways:
            gateway.start("/health")
        results = run_locust([g.url for g in gateways], secret, args, workdir)
        if not all([gateway.stop() for gateway in gateways]):
            raise RuntimeError("a gateway did not shut down cleanly")
    finally:
        for gateway in gateways:
            gateway.stop()
        upstream.stop()
    return results, ledger_rows(ledger_url)


def report(results: list[LoadResult], rows: tuple[int, int], args: argparse.Namespace) -> str:
    lines = [
        f"locust: {args.users} users, {args.seconds} s, {args.replicas} gateway replica(s), "
        f"auth on, ledger {(args.ledger_url or 'sqlite').split(':')[0]}, "
        f"limits {'redis' if args.redis_url else 'in memory'}",
        f"{'request':<12} {'sent':>7} {'failed':>7} {'req/s':>8} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7}",
    ]
    for r in results:
        lines.append(
            f"{r.name:<12} {r.requests:>7} {r.failures:>7} {r.rps:>8.1f} {r.p50_ms:>7.0f} "
            f"{r.p95_ms:>7.0f} {r.p99_ms:>7.0f}"
        )
    total = next(r for r in results if r.name == "Aggregated")
    verdict = "OK" if promises_kept(results, rows) else "BROKEN"
    lines.append(
        f"ledger: {rows[0]} request rows ({rows[1]} status 200) for {total.requests} sent "
        f"-> {verdict}"
    )
    return "\n".join(lines)


def promises_kept(results: list[LoadResult], rows: tuple[int, int]) -> bool:
    total = next(r for r in results if r.name == "Aggregated")
    return total.failures == 0 and rows == (total.requests, total.requests) and total.requests > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--spawn-rate", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=1, help="gateway processes")
    parser.add_argument("--ledger-url", help="shared ledger (default: a SQLite file)")
    parser.add_argument("--redis-url", help="shared limits (server.redis_url) for --replicas")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smallfirst-load-") as tmp:
        results, rows = run(args, Path(tmp))

    print(report(results, rows, args))
    return 0 if promises_kept(results, rows) else 1


if __name__ == "__main__":
    sys.exit(main())
