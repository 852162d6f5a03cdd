"""The load benchmark is code too: its stats reading, verdict and a tiny real run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"
spec = importlib.util.spec_from_file_location("bench_load", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_load"] = bench
spec.loader.exec_module(bench)


def test_stats_percentiles_and_verdict(tmp_path: Path) -> None:
    entries = [
        {
            "name": "chat",
            "num_requests": 4,
            "num_failures": 0,
            "response_times": {"10": 3, "90": 1},
        },
        {"name": "chat stream", "num_requests": 1, "num_failures": 1, "response_times": {"50": 1}},
    ]
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(entries))
    results = bench.read_stats(path, seconds=5)
    total = results[-1]
    assert (total.name, total.requests, total.failures, total.rps) == ("Aggregated", 5, 1, 1.0)
    assert (total.p50_ms, total.p95_ms) == (10.0, 90.0)
    assert not bench.promises_kept(results, (5, 5))  # a failed request breaks the promise
    ok = [*bench.read_stats(path, 5)[:1], bench._result("Aggregated", entries[:1], 5)]
    assert bench.promises_kept(ok, (4, 4)) and not bench.promises_kept(ok, (5, 4))


@pytest.mark.slow
def test_tiny_load_run_keeps_every_promise(capsys) -> None:
    if importlib.util.find_spec("locust") is None:  # never import it here: gevent patches ssl
        pytest.skip("locust missing: pip install -e '.[bench]'")
    assert bench.main(["--users", "3", "--seconds", "3"]) == 0
    out = capsys.readouterr().out
    assert "-> OK" in out and "Aggregated" in out
    assert bench.main(["--users", "4", "--seconds", "3", "--replicas", "2"]) == 0
    assert "2 gateway replica(s)" in capsys.readouterr().out
