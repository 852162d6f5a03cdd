"""`smallfirst tasks` (and the tasks section of `smallfirst report`) on a real SQLite ledger:
per task its requests, spend on request rows only, share per tier, evidence and policy."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.learning.records import Estimate, Evidence, Policy
from smallfirst.learning.store import LearningStore
from smallfirst.ledger import LedgerEntry, LedgerStore

runner = CliRunner()
DAY = 86_400.0


@pytest.fixture
def ledger(tmp_path, monkeypatch) -> str:
    config = tmp_path / "smallfirst.yaml"
    config.write_text("learn:\n  min_evidence: 10\n")
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(config))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    now = time.time()
    store = LedgerStore(url)
    entries = [
        *(served(f"s{i}", "intents", "small", 0.001, now - 60) for i in range(6)),
        served("l0", "intents", "large", 0.01, now - 60),
        served("l1", "intents", "large", 0.01, now - 2 * DAY),
        LedgerEntry("s0", kind="hop", hop=1, task="intents", model="small", tier="small",
                    cost_usd=5.0),  # a hop's spend is in its request row already
        LedgerEntry("f0", task="intents", status=500, ts=now - 60),
        *(served(f"c{i}", "t-0123456789ab", "large", 0.01, now - 60) for i in range(3)),
        served("plain", None, "large", 0.01, now - 60),
    ]  # fmt: skip
    store.insert(entry.as_row() for entry in entries)
    learning = LearningStore(store.engine)
    learning.add_evidence(
        [shadow("s0", 0.002), shadow("s0", 0.002), shadow("s1", 0.002), shadow("l1", 0.002)]
    )
    learning.save_policy(Policy("intents", 0, "large", ["large"], "cold", 0.95))
    estimate = Estimate(n=120, agreement=0.98, lower=0.96, upper=0.99)
    learning.save_policy(
        Policy("intents", 0, "small", ["small", "large"], "proven", 0.95, estimate)
    )
    store.close()
    return url


def served(request_id: str, task: str | None, tier: str, cost: float, ts: float) -> LedgerEntry:
    return LedgerEntry(
        request_id, task=task, model=tier, tier=tier, cost_usd=cost, baseline_model="large",
        baseline_cost_usd=0.01, ts=ts,
    )  # fmt: skip


def shadow(request_id: str, cost: float) -> Evidence:
    return Evidence(request_id, "intents", "shadow", "label", "x", "small", "a", "large", "a",
                    True, cost_usd=cost)  # fmt: skip


def as_json(*args: str) -> dict:
    result = runner.invoke(app, ["tasks", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_each_task_with_volume_spend_tiers_evidence_and_policy(ledger) -> None:
    found = {task["task"]: task for task in as_json("--ledger", ledger)["tasks"]}
    assert list(found) == ["intents", "t-0123456789ab"]  # busiest first, no untasked rows
    intents = found["intents"]
    assert (intents["requests"], intents["errors"]) == (9, 1)
    assert intents["cost_usd"] == pytest.approx(0.026)
    assert intents["tiers"] == {"small": 0.75, "large": 0.25}
    assert intents["evidence"] == 3 and intents["learning_cost_usd"] == pytest.approx(0.008)
    assert intents["policy"]["version"] == 2 and intents["policy"]["serve"] == "small"
    assert intents["needed"] is None
    assert intents["saved_usd"] == pytest.approx(0.08 - 0.026 - 0.008)
    # two days of traffic, its start read to the hour from the rollups: 30 / 2 days, give or
    # take the hour
    assert 30 / (2 + 1 / 24) <= intents["saved_per_month_usd"] / intents["saved_usd"] <= 15
    cold = found["t-0123456789ab"]
    assert (cold["requests"], cold["tiers"], cold["evidence"]) == (3, {"large": 1.0}, 0)
    assert cold["policy"] is None and cold["needed"] == 10
    assert cold["saved_usd"] == pytest.approx(0.0)


def test_since_counts_only_recent_requests(ledger) -> None:
    found = {task["task"]: task for task in as_json("--ledger", ledger, "--since", "1d")["tasks"]}
    assert found["intents"]["requests"] == 8
    assert found["intents"]["tiers"] == {"small": 6 / 7, "large": 1 / 7}
    assert found["intents"]["evidence"] == 3  # what the learner has, whatever the window


def test_the_table(ledger) -> None:
    result = runner.invoke(app, ["tasks", "--ledger", ledger], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "v2 small · 0.980 [0.960, 0.990] vs 0.95 (N=120)" in result.stdout
    assert "large (cold start) · needs 10 more comparisons" in result.stdout
    assert "small 75% · large 25%" in result.stdout


def test_the_report_has_the_tasks_section(ledger) -> None:
    result = runner.invoke(app, ["report", "--ledger", ledger], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tasks" in result.stdout and "needs 10 more comparisons" in result.stdout
    summary = json.loads(runner.invoke(app, ["report", "--ledger", ledger, "--json"]).stdout)
    assert [task["task"] for task in summary["tasks"]] == ["intents", "t-0123456789ab"]


def test_a_ledger_without_tasks_says_how_to_get_them(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["tasks", "--ledger", url])
    assert result.exit_code == 0, result.output
    assert "learn:" in result.stdout
    assert as_json("--ledger", url)["tasks"] == []
    report = runner.invoke(app, ["report", "--ledger", url])
    assert report.exit_code == 0 and "needs" not in report.stdout


def test_a_bad_since_is_refused(ledger) -> None:
    result = runner.invoke(app, ["tasks", "--ledger", ledger, "--since", "yesterday"])
    assert result.exit_code != 0 and "--since" in result.stderr


def test_the_learning_budget_of_the_day_and_when_it_is_spent(ledger, tmp_path) -> None:
    budget = as_json("--ledger", ledger)["learning_budget"]
    assert budget["spent_usd"] == pytest.approx(0.008) and budget["budget_usd"] == 1.0
    assert budget["exhausted"] is False
    config = tmp_path / "smallfirst.yaml"
    config.write_text("learn:\n  min_evidence: 10\n  budget_usd_per_day: 0.005\n")
    result = runner.invoke(app, ["tasks", "--ledger", ledger], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "learning budget today: $0.0080 of $0.005" in result.stdout
    assert "no shadow, audit or judge calls until 00:00 UTC" in result.stdout
    report = json.loads(runner.invoke(app, ["report", "--ledger", ledger, "--json"]).stdout)
    assert report["learning_budget"]["exhausted"] is True


def test_the_share_per_tier_over_time(ledger) -> None:
    """`series`: the window cut in round buckets (all time here: two days, so 6 h)."""
    intents = as_json("--ledger", ledger)["tasks"][0]
    series = intents["series"]
    assert series["bucket_s"] == 6 * 3600 and 9 <= len(series["buckets"]) <= 10
    answered = [bucket for bucket in series["buckets"] if bucket["requests"]]
    assert [(b["requests"], b["tiers"]) for b in answered] == [
        (1, {"large": 1.0}),
        (7, {"small": 6 / 7, "large": 1 / 7}),
    ]
    starts = [bucket["start"] for bucket in series["buckets"]]
    assert starts == [starts[0] + i * 6 * 3600 for i in range(len(starts))]
    recent = as_json("--ledger", ledger, "--since", "1d")["tasks"][0]["series"]
    assert recent["bucket_s"] == 3600 and sum(b["requests"] for b in recent["buckets"]) == 7


def test_the_table_draws_the_share_below_large(ledger) -> None:
    result = runner.invoke(
        app, ["tasks", "--ledger", ledger, "--since", "1d"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "below large" in result.stdout
    assert "▇ 86%→86% per 1h" in result.stdout
    report = runner.invoke(app, ["report", "--ledger", ledger], env={"COLUMNS": "250"})
    assert "0%→86% per 6h" in report.stdout


def test_a_tasks_own_evidence_count_is_what_it_needs(ledger, tmp_path, monkeypatch) -> None:
    config = tmp_path / "own.yaml"
    own = "  tasks:\n    t-0123456789ab: {min_evidence: 25}\n"
    config.write_text("learn:\n  min_evidence: 10\n" + own)
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(config))
    found = {task["task"]: task for task in as_json("--ledger", ledger)["tasks"]}
    assert found["t-0123456789ab"]["needed"] == 25
