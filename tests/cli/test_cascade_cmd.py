"""`smallfirst cascade ...` end to end on in-process replay models (no network, no weights)."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app

runner = CliRunner()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A small replay model that is right on even items, a large one that is always right."""
    gold = {f"item {i}": ["yes", "no"][i % 2] for i in range(20)}
    small_answers = {p: (g if i % 2 == 0 else "unsure") for i, (p, g) in enumerate(gold.items())}
    for name, answers in (("small", small_answers), ("large", gold)):
        with (tmp_path / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["prompt", "answer"])
            writer.writerows(answers.items())
    with (tmp_path / "labelled.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "label"])
        writer.writerows(gold.items())
    config = {
        "models": [
            {"name": n, "backend": "replay", "tier": n, "price": {"input": p, "output": p},
             "options": {"outcomes": str(tmp_path / f"{n}.csv")}}
            for n, p in (("small", 0.1), ("large", 10.0))
        ],
        "cascades": {"yn": {"rungs": ["small", "large"],
                            "checks": [{"kind": "constraint", "labels": ["yes", "no"]}]}},
    }  # fmt: skip
    (tmp_path / "smallfirst.yaml").write_text(json.dumps(config))
    monkeypatch.setenv("SMALLFIRST_CONFIG", str(tmp_path / "smallfirst.yaml"))
    return tmp_path


def test_ask_prints_the_answer_and_the_hops(setup):
    kept = runner.invoke(app, ["cascade", "ask", "item 0", "--cascade", "yn", "--json"])
    assert kept.exit_code == 0, kept.output
    payload = json.loads(kept.stdout)
    assert payload["answer"] == "yes" and payload["model"] == "small"
    escalated = runner.invoke(app, ["cascade", "ask", "item 1", "--cascade", "cascade-yn"])
    assert escalated.exit_code == 0, escalated.output
    assert escalated.stdout.startswith("no")
    assert "escalate" in escalated.output and "1 escalation(s)" in escalated.output


def test_ask_with_an_unknown_cascade_fails_cleanly(setup):
    result = runner.invoke(app, ["cascade", "ask", "x", "--cascade", "nope"])
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.mark.parametrize("command", ["ask", "score"])
@pytest.mark.parametrize(("name", "kind"), [("small", "model"), ("auto", "router")])
def test_a_name_that_is_not_a_cascade_says_what_it_names(setup, command, name, kind):
    """`--cascade` resolves as `model` does in the gateway: the error names what it is."""
    first = "x" if command == "ask" else str(setup / "labelled.csv")
    result = runner.invoke(app, ["cascade", command, first, "--cascade", name])
    assert result.exit_code == 1
    assert f"'{name}' is a {kind}, not a cascade" in result.output
    assert "cascade-yn" in result.output


def test_score_then_calibrate(setup):
    scored = setup / "scored.csv"
    result = runner.invoke(
        app, ["cascade", "score", str(setup / "labelled.csv"), "--cascade", "yn", "-o", str(scored)]
    )
    assert result.exit_code == 0, result.output
    assert "20 answers, accuracy 0.500" in result.output
    rows = list(csv.DictReader(scored.open()))
    assert rows[0]["constraint"] == "1.000000" and rows[1]["constraint"] == "0.000000"
    calibrated = runner.invoke(
        app,
        ["cascade", "calibrate", str(scored), "--check", "constraint", "--target-accuracy", "0.75"],
    )
    assert calibrated.exit_code == 0, calibrated.output
    assert "threshold: 1.0000" in calibrated.output and "0.500" in calibrated.output


def test_calibrate_without_a_score_column_says_what_to_give(setup):
    scored = setup / "s.csv"
    scored.write_text("prompt,answer,correct\na,b,1\n")
    result = runner.invoke(app, ["cascade", "calibrate", str(scored), "--target-accuracy", "0.9"])
    assert result.exit_code == 1 and "give --scorer or --check" in result.output


def test_train_scorer_reports_a_clear_error_on_one_class_data(setup):
    data = setup / "one.csv"
    data.write_text("prompt,answer,correct\na,b,1\nc,d,1\n")
    result = runner.invoke(app, ["cascade", "train-scorer", str(data)])
    assert result.exit_code == 1 and "both correct and wrong" in result.output


def test_plain_ask_takes_a_router_or_a_cascade_too(setup):
    routed = runner.invoke(app, ["ask", "item 2", "--model", "auto"])
    assert routed.exit_code == 0, routed.output
    assert "yes" in routed.stdout and "small (small)" in routed.stderr
    climbed = runner.invoke(app, ["ask", "item 1", "--model", "cascade-yn"])
    assert climbed.exit_code == 0, climbed.output
    assert "no" in climbed.stdout and "large (large)" in climbed.stderr
    unknown = runner.invoke(app, ["ask", "item 1", "--model", "cascade-nope"])
    assert unknown.exit_code != 0 and "does not exist" in unknown.output
