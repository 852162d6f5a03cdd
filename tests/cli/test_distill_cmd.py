import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.distill.bank import ExampleBank
from smallfirst.testing import Script

from ..distill.conftest import intent_pairs

runner = CliRunner()
PAIRS = intent_pairs()[::2]  # 30 pairs, 10 per intent


@pytest.fixture
def project(tmp_path: Path, scripted) -> tuple[Path, object]:
    upstream, url = scripted
    (tmp_path / "task.yaml").write_text(
        "name: intents\nkind: classify\nlabels: [weather, music, restaurant]\n"
    )
    (tmp_path / "smallfirst.yaml").write_text(
        "models:\n"
        f"  - {{name: big, backend: openai, base_url: '{url}', tier: large,"
        " price: {input: 0, output: 1000}}\n"
    )
    lines = [json.dumps({"input": text}) for text, _ in PAIRS]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    # concurrency 1 keeps request order = input order, so each input gets its own gold label
    upstream.enqueue(*(Script(text=intent, completion_tokens=1) for _, intent in PAIRS))
    return tmp_path, upstream


def label(*extra: str):
    args = ["distill", "task.yaml", "--teacher", "big", "--inputs", "in.jsonl"]
    return runner.invoke(app, [*args, "--concurrency", "1", *extra])


def test_label_student_export_and_rerun(project):
    folder, upstream = project
    first = label()
    assert first.exit_code == 0, first.output
    assert "$0.0300" in first.stdout  # 30 answers x 1 token x $1000/Mtok
    bank = ExampleBank.open("intents")
    assert len(bank) == 30 and {e.label for e in bank.examples()} == {
        "weather",
        "music",
        "restaurant",
    }
    again = label()
    assert again.exit_code == 0 and len(upstream.received) == 30  # nothing asked twice

    trained = runner.invoke(app, ["distill", "student", "intents", "--out", "s.joblib"])
    assert trained.exit_code == 0, trained.output
    assert "30 examples, 3 labels" in trained.stdout and "backend: student" in trained.stdout
    assert (folder / "s.joblib").exists()

    exported = runner.invoke(
        app, ["distill", "export", "intents", "--out", "ft.jsonl", "--format", "prompt-completion"]
    )
    assert exported.exit_code == 0 and "30 records" in exported.stdout
    assert all(
        "completion" in json.loads(x) for x in (folder / "ft.jsonl").read_text().split("\n")[:-1]
    )

    listed = runner.invoke(app, ["distill", "banks"])
    assert listed.exit_code == 0 and "intents" in listed.stdout


def test_cap_message_and_errors(project):
    folder, _ = project
    capped = label("--max-usd", "0.0005", "--max-tokens", "100")
    assert capped.exit_code == 0, capped.output
    assert "stopped before the $0.0005 cap" in capped.stderr

    missing = runner.invoke(
        app, ["distill", "task.yaml", "--teacher", "big", "--inputs", "no.jsonl"]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    unknown = runner.invoke(
        app, ["distill", "task.yaml", "--teacher", "nope", "--inputs", "in.jsonl"]
    )
    assert unknown.exit_code == 1 and "'nope' does not exist" in unknown.stderr
    (folder / "bad.jsonl").write_text('{"input": "ok"}\n{"other": 1}\n')
    bad = runner.invoke(app, ["distill", "task.yaml", "--teacher", "big", "--inputs", "bad.jsonl"])
    assert bad.exit_code == 1 and "bad.jsonl:2" in bad.stderr
    (folder / "task2.yaml").write_text("name: intents\nkind: classify\nlabels: [a, b]\n")
    changed = runner.invoke(
        app, ["distill", "task2.yaml", "--teacher", "big", "--inputs", "in.jsonl"]
    )
    assert changed.exit_code == 1 and "different task spec" in changed.stderr
    no_bank = runner.invoke(app, ["distill", "student", "ghost"])
    assert no_bank.exit_code == 1 and "no example bank 'ghost'" in no_bank.stderr


def test_a_teacher_failure_is_retried_by_the_failover_policy(project):
    _folder, upstream = project
    upstream.queue.appendleft(Script("error", status=503))
    done = label()
    assert done.exit_code == 0, done.output
    assert len(ExampleBank.open("intents")) == 30 and len(upstream.received) == 31


def test_max_attempts_caps_the_calls_per_input(project):
    _folder, upstream = project
    upstream.queue.appendleft(Script("error", status=503))
    done = label("--max-attempts", "1")
    assert done.exit_code == 0, done.output
    bank = ExampleBank.open("intents")
    (failure,) = bank.failures()
    assert failure.input == PAIRS[0][0] and failure.attempts == 1 and "503" in failure.reason
    assert len(bank) == 29 and len(upstream.received) == 30
