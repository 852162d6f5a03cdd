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


def test_seeded_retimes_an_existing_ledger_and_writes_nothing(tmp_path, capsys) -> None:
    import time

    import pytest

    from dashboard import main
    from ledger_traffic import bulk_seed, traffic
    from smallfirst.ledger import LedgerStore

    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    store = LedgerStore(url)
    rows = bulk_seed(store, traffic(200, time.time()))
    store.close()
    figures = main(["--url", url, "--seeded", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "api/all p50 ms" in out and "seeded" not in out and "writer" not in out
    assert set(figures) == {"api_24h_ms", "api_7d_ms", "api_30d_ms", "report_ms"}
    assert len(LedgerStore(url).rows()) == rows  # nothing added, pruned or blanked
    with pytest.raises(SystemExit):
        main(["--seeded"])


def test_skip_prune_keeps_the_prompts_and_still_times_the_writer(capsys) -> None:
    from dashboard import main

    figures = main(
        [
            *("--requests", "200", "--repeat", "1", "--writer-rows", "200"),
            *("--skip-prune", "--baseline-repeat", "1"),
        ]
    )
    out = capsys.readouterr().out
    assert "ledger prune" not in out and "writer rows/s: with rollups" in out
    assert "bytes_per_request_text" in figures and "bytes_per_request_pruned" not in figures
