"""The ledger-at-volume benchmark runs end to end on a tiny ledger (shape, not numbers)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_benchmark_runs_on_a_tiny_ledger(capsys) -> None:
    from dashboard import main

    figures = main(["--requests", "300", "--repeat", "1", "--writer-rows", "300"])
    out = capsys.readouterr().out
    assert "api/all p50 ms" in out and "smallfirst report --since 30d" in out
    assert "writer rows/s: with rollups" in out
    assert set(figures) >= {"api_24h_ms", "api_30d_ms", "report_ms", "writer_rows_s"}
    assert figures["bytes_per_request_pruned"] < figures["bytes_per_request_text"]
