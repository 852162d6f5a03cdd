"""`smallfirst eval` and `smallfirst cost`: table, JSON, HTML, exit codes, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app

runner = CliRunner()
ITEMS = [(f"item number {i} says {label}", label) for i in range(24) for label in ["spam", "ham"]]


@pytest.fixture
def project_files(tmp_path: Path) -> dict[str, Path]:
    """A task, a labelled set and a config of two replay models (exact and half right)."""
    (tmp_path / "task.yaml").write_text(
        "kind: classify\nname: spamham\nlabels: [spam, ham]\nfew_shot: {mode: none}\n"
    )
    with (tmp_path / "data.jsonl").open("w") as handle:
        for text, label in ITEMS:
            handle.write(json.dumps({"input": text, "expected": label}) + "\n")
    with (tmp_path / "outcomes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "label"])
        writer.writerows(ITEMS)
    outcomes = tmp_path / "outcomes.csv"
    (tmp_path / "smallfirst.yaml").write_text(
        f"""
models:
  - name: exact
    backend: replay
    tier: large
    price: {{input: 3.0, output: 15.0}}
    options: {{outcomes: {outcomes}, accuracy: 1.0}}
  - name: coin
    backend: replay
    tier: small
    price: {{input: 0.1, output: 0.1}}
    options: {{outcomes: {outcomes}, accuracy: 0.5}}
  - name: gpu
    backend: openai
    base_url: http://127.0.0.1:9/v1
    hourly_usd: 1.5
    tokens_per_second: 250
"""
    )
    return {p.stem: p for p in tmp_path.iterdir()}


def _eval(files, *extra: str):
    return runner.invoke(
        app,
        [
            "--config",
            str(files["smallfirst"]),
            "eval",
            str(files["task"]),
            "--data",
            str(files["data"]),
            *extra,
        ],
    )


def test_eval_recommends_writes_json_and_html(project_files, tmp_path):
    out, page = tmp_path / "out.json", tmp_path / "report.html"
    result = _eval(
        project_files,
        "--models",
        "exact,coin",
        "--threshold",
        "0.8",
        "--json",
        str(out),
        "--html",
        str(page),
    )
    assert result.exit_code == 0, result.output
    assert "exact meets the bar at accuracy 1.000" in result.output
    data = json.loads(out.read_text())
    assert data["recommendation"]["winner"] == "exact"
    assert data["examples"] == len(ITEMS)
    assert [c["name"] for c in data["candidates"]] == ["exact", "coin"]
    accuracy = data["candidates"][0]["metrics"]["accuracy"]
    assert accuracy["value"] == 1.0 and accuracy["method"] == "wilson"
    assert accuracy["low"] == pytest.approx(0.926, abs=1e-3)  # 48 of 48 right
    assert (
        data["candidates"][0]["usd_per_1k_requests"] > data["candidates"][1]["usd_per_1k_requests"]
    )
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_eval_exit_code_2_when_nobody_meets_the_bar(project_files, tmp_path):
    out = tmp_path / "out.json"
    result = _eval(project_files, "--models", "coin", "--limit", "20", "--json", str(out))
    assert result.exit_code == 2, result.output
    data = json.loads(out.read_text())
    assert data["recommendation"]["winner"] is None
    assert data["examples"] == 20
    assert "no candidate meets accuracy >= 0.9" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "exact,nope"], "'nope' does not exist. Configured models"),
        (["--models", "exact", "--metric", "rouge_l"], "metric 'rouge_l' does not apply"),
        (["--models", "exact", "--metric", "macro_f1", "--judge", "nope"], "'nope' does not exist"),
        (["--models", "exact", "--judge", "coin"], "--judge needs a summarize task"),
    ],
)
def test_eval_bad_arguments_fail_cleanly(project_files, extra, message):
    result = _eval(project_files, *extra)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_eval_bad_data_names_the_line(project_files, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "x", "expected": "spam"}\nnot json\n')
    files = {**project_files, "data": bad}
    result = _eval(files, "--models", "exact")
    assert result.exit_code == 1
    assert "bad.jsonl:2: not valid JSON" in " ".join(result.output.split())


def test_cost_projection_json(project_files, tmp_path):
    out = tmp_path / "cost.json"
    result = runner.invoke(
        app,
        [
            "--config",
            str(project_files["smallfirst"]),
            "cost",
            "--requests",
            "1e6",
            "--input-tokens",
            "800",
            "--output-tokens",
            "200",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {row["model"]: row for row in data["models"]}
    assert rows["exact"]["usd_total"] == pytest.approx(1e6 * (800 * 3.0 + 200 * 15.0) / 1e6)
    assert rows["gpu"]["hours"] == pytest.approx(1e9 / 250 / 3600)
    assert rows["gpu"]["usd_total"] == pytest.approx(rows["gpu"]["hours"] * 1.5)
    assert data["baseline_model"] == "exact"
    assert "1,000,000 requests" in result.output


def test_cost_unknown_model_fails_cleanly(project_files):
    result = runner.invoke(
        app, ["--config", str(project_files["smallfirst"]), "cost", "--models", "nope"]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_cost_json_to_stdout_with_model_filter(project_files):
    result = runner.invoke(
        app,
        [
            "--config",
            str(project_files["smallfirst"]),
            "cost",
            "--models",
            "gpu,coin",
            "--requests",
            "1000",
            "--json",
            "-",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [row["model"] for row in data["models"]] == ["coin", "gpu"]
    assert data["requests"] == 1000


def test_eval_json_to_stdout_is_pure_json(project_files):
    result = _eval(project_files, "--models", "exact", "--limit", "4", "--json", "-")
    assert result.exit_code == 2, result.output  # 4 items cannot prove 0.9 at 95%
    data = json.loads(result.stdout)
    assert data["candidates"][0]["metrics"]["accuracy"]["value"] == 1.0
    assert "no candidate meets" in result.stderr


def test_unwritable_output_fails_before_any_model_runs(project_files, tmp_path):
    missing = tmp_path / "no" / "such" / "report.html"
    result = _eval(project_files, "--models", "exact", "--html", str(missing))
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "spamham" not in result.output  # no table: nothing ran


@pytest.fixture(scope="module")
def half_sure_student(tmp_path_factory) -> Path:
    """A MiniLM student on the spam/ham items whose threshold is its median confidence, so it
    answers about half of them (rightly) and defers the rest."""
    from smallfirst.distill.student import train_student
    from smallfirst.embeddings import get_embedder

    vectors = get_embedder("minilm").encode([text for text, _ in ITEMS])
    student = train_student(vectors, [label for _, label in ITEMS], target_accuracy=0.9)
    student.similarity_threshold = -1.0
    student.temperature = 5.0  # softer than fitted: confidences spread below 1.0
    confidences = sorted(p.confidence for p in student.predict_vectors(vectors))
    student.threshold = confidences[len(confidences) // 2]
    path = tmp_path_factory.mktemp("student") / "student.joblib"
    student.save(path)
    return path


def test_eval_scores_a_student_on_what_it_answers_and_as_a_cascade(
    project_files, half_sure_student, tmp_path, monkeypatch
):
    from smallfirst.embeddings import MiniLMEmbedder

    (tmp_path / "student.joblib").write_bytes(half_sure_student.read_bytes())
    config = project_files["smallfirst"]
    student = "  - name: student\n    backend: student\n    tier: tiny\n"
    config.write_text(
        config.read_text() + student + "    options: {path: student.joblib}\n"
    )  # relative to the config file, not to the working directory
    monkeypatch.chdir(tmp_path.parent)
    batches: list[int] = []
    encode = MiniLMEmbedder.encode

    def counting(self, texts):
        batches.append(len(texts))
        return encode(self, texts)

    monkeypatch.setattr(MiniLMEmbedder, "encode", counting)
    out = tmp_path / "out.json"
    result = _eval(
        project_files, "--models", "student,exact", "--threshold", "0.8", "--json", str(out)
    )
    assert result.exit_code == 0, result.output
    assert batches == [len(ITEMS)]  # one batch for the whole set, not one text per request
    data = json.loads(out.read_text())
    rows = {c["name"]: c for c in data["candidates"]}
    assert list(rows) == ["student", "exact", "student, then exact"]
    deferred = rows["student"]["deferred"]
    assert 0 < deferred < len(ITEMS) and rows["student"]["errors"] == 0
    assert rows["student"]["metrics"]["accuracy"]["value"] == 1.0  # deferrals are not wrong
    assert rows["student"]["coverage"]["value"] == pytest.approx(1 - deferred / len(ITEMS))
    assert rows["student, then exact"]["metrics"]["accuracy"]["value"] == 1.0
    assert data["recommendation"]["winner"] == "student, then exact"
    assert data["recommendation"]["winner_rungs"] == ["student", "exact"]
    text = " ".join(result.output.split())
    answered = len(ITEMS) - deferred
    assert f"student answers {answered} of {len(ITEMS)} inputs (coverage" in text
    assert "student, then exact: accuracy 1.000" in text
    assert "configure it as a cascade: rungs: [student, exact]" in text
    assert f"student: {len(ITEMS)}/{len(ITEMS)} (done)" in " ".join(result.stderr.split())


def test_eval_sample_draws_at_random_and_refuses_a_limit_too(project_files, tmp_path):
    outputs = []
    for seed in ("1", "1", "2"):
        out = tmp_path / f"sample-{seed}.json"
        result = _eval(
            project_files, "--models", "exact", "--sample", "10", "--seed", seed, "--json", str(out)
        )
        assert result.exit_code == 2, result.output  # 10 items cannot prove 0.9
        data = json.loads(out.read_text())
        assert data["examples"] == 10
        outputs.append([p["output"] for p in data["candidates"][0]["predictions"]])
    assert outputs[0] == outputs[1] != outputs[2]  # the seed picks the sample
    assert set(outputs[0]) == {"spam", "ham"}  # not the first ten lines only
    both = _eval(project_files, "--models", "exact", "--sample", "10", "--limit", "5")
    assert both.exit_code == 1
    assert "use either a limit" in " ".join(both.output.split())
