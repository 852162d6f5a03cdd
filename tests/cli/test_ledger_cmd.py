"""`smallfirst ledger export` round-trips the raw rows; `ledger prune` applies retention."""

from __future__ import annotations

import json
import random
import time

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.ledger import LedgerStore
from smallfirst.ledger import export as export_module
from smallfirst.ledger.retention import DAY_S
from tests.ledger.test_rollups import _traffic

runner = CliRunner()


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> tuple[str, list[dict]]:
    """A ledger with requests, hops, prompts (incl. non-ASCII), nulls and streams; the export
    chunk is small so the rows cross several chunks (row groups)."""
    monkeypatch.setattr(export_module, "EXPORT_CHUNK", 16)
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = LedgerStore(url)
    entries = _traffic(random.Random(2), 40)
    for n, entry in enumerate(entries):
        entry.ts = time.time() - n * 3600
        entry.prompt = None if n % 3 else f"frage {n}: grüße ☃"
    store.insert(e.as_row() for e in entries)
    rows = store.rows()
    store.close()
    return url, rows


def test_jsonl_round_trips(ledger, tmp_path) -> None:
    url, rows = ledger
    out = tmp_path / "rows.jsonl"
    result = runner.invoke(app, ["ledger", "export", "--ledger", url, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == rows


def test_parquet_round_trips_in_row_groups(ledger, tmp_path) -> None:
    url, rows = ledger
    out = tmp_path / "rows.parquet"
    args = ["ledger", "export", "--ledger", url, "--format", "parquet", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_row_groups == -(-len(rows) // 16)
    assert parquet.read().to_pylist() == rows


def test_since_exports_only_newer_rows_to_stdout(ledger) -> None:
    url, rows = ledger
    result = runner.invoke(app, ["ledger", "export", "--ledger", url, "--since", "10h"])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert exported and exported == [r for r in rows if r["ts"] >= time.time() - 10 * 3600]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "csv"], "use one of jsonl, parquet"),
        (["--format", "parquet"], "needs --output"),
        (["--since", "yesterday"], "--since 'yesterday'"),
        (["--output", "/nonexistent/dir/x.jsonl"], "cannot write"),
    ],
)
def test_bad_export_arguments_are_clear_errors(ledger, args, message) -> None:
    url, _rows = ledger
    result = runner.invoke(app, ["ledger", "export", "--ledger", url, *args])
    assert result.exit_code == 1 and message in result.output


def test_prune_blanks_old_prompts_and_keeps_the_report(ledger, monkeypatch) -> None:
    url, rows = ledger
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)  # the tasks' monthly projections run to now
    before = runner.invoke(app, ["report", "--json", "--ledger", url]).stdout
    result = runner.invoke(
        app, ["ledger", "prune", "--ledger", url, "--prompts-days", "0.5", "--json"]
    )
    assert result.exit_code == 0, result.output
    old = [r for r in rows if r["prompt"] and r["ts"] < time.time() - 0.5 * DAY_S]
    assert json.loads(result.stdout) == {"prompts_blanked": len(old), "rows_deleted": 0}
    deleted = runner.invoke(app, ["ledger", "prune", "--ledger", url, "--rows-days", "1"])
    assert deleted.exit_code == 0 and "deleted" in deleted.stdout
    assert runner.invoke(app, ["report", "--json", "--ledger", url]).stdout == before
    bad = runner.invoke(app, ["ledger", "prune", "--ledger", url, "--rows-days", "-1"])
    assert bad.exit_code == 1
