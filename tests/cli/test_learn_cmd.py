"""`smallfirst learn` over a real ledger: the per-task table, history and rollback."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from smallfirst.cli import app
from tests.learning.learn_helpers import compared, open_store

runner = CliRunner()


def test_learn_prints_each_task_and_history_and_rollback_work(tmp_path) -> None:
    store = open_store(tmp_path)
    store.add_evidence(compared("extract", [True] * 200))
    store.add_evidence(compared("fresh", [True] * 5))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    (tmp_path / "smallfirst.yaml").write_text(
        "models:\n"
        "  - {name: small, backend: openai, base_url: 'http://127.0.0.1:9/v1', tier: small,"
        " price: {input: 1, output: 2}}\n"
        "  - {name: large, backend: openai, base_url: 'http://127.0.0.1:9/v1', tier: large,"
        " price: {input: 10, output: 30}}\n"
        "learn: {min_evidence: 50}\n"
    )
    result = runner.invoke(app, ["learn", "--ledger", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + result.stderr
    assert "promoted" in result.stdout and "needs_evidence" in result.stdout
    assert "5 of the 50 comparisons needed (45 more)" in result.stdout
    assert "[0.98" in result.stdout and "100%" in result.stdout

    again = json.loads(
        runner.invoke(app, ["learn", "--ledger", url, "--json", "-t", "extract"]).stdout
    )
    assert [o["outcome"] for o in again] == ["kept"]

    rolled = runner.invoke(app, ["learn", "rollback", "extract", "1", "--ledger", url])
    assert rolled.exit_code == 0 and "extract v2: a copy of v1" in rolled.stdout
    history = json.loads(
        runner.invoke(app, ["learn", "history", "extract", "--ledger", url, "--json"]).stdout
    )
    assert [(p["version"], p["rolled_back_from"]) for p in history] == [(1, None), (2, 1)]
    table = runner.invoke(
        app, ["learn", "history", "extract", "--ledger", url], env={"COLUMNS": "300"}
    )
    assert "rolled back to v1" in table.stdout


def test_unknown_versions_and_tasks_are_one_clean_line(tmp_path) -> None:
    open_store(tmp_path)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    missing = runner.invoke(app, ["learn", "rollback", "nope", "3", "--ledger", url])
    assert missing.exit_code == 1 and "task 'nope' has no policy version 3" in missing.stderr
    empty = runner.invoke(app, ["learn", "history", "nope", "--ledger", url])
    assert empty.exit_code == 1 and "has no policy yet" in empty.stderr
