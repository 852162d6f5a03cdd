"""`distill label --background` and what `distill student` claims, through the real CLI."""

import json
from pathlib import Path

from smallfirst.distill.bank import ExampleBank
from smallfirst.testing import Script

from .test_distill_cmd import PAIRS, label, project, runner  # noqa: F401  (fixture)
from .test_distill_cmd import app as cli

CHATTER = ["tell me a joke about cats", "translate 'hello' into German", "what is 17 times 3"]


def test_background_is_stored_free_and_the_student_defers_it(project):  # noqa: F811
    folder, upstream = project
    lines = [json.dumps({"input": t}) for t in [*CHATTER, PAIRS[0][0]]]
    (folder / "bg.jsonl").write_text("\n".join(lines) + "\n")
    result = label("--background", "bg.jsonl")
    assert result.exit_code == 0, result.output
    assert "background: 3 new of 3 inputs" in result.stdout  # a labelled input is not background
    assert len(upstream.received) == len(PAIRS)  # the teacher never sees background
    bank = ExampleBank.open("intents")
    assert bank.background_count() == 3 and len(bank) == len(PAIRS)

    trained = runner.invoke(
        cli, ["distill", "student", "intents", "--out", "s.joblib", "--target-accuracy", "0.85"]
    )
    assert trained.exit_code == 0, trained.output
    out = trained.stdout
    assert "30 examples, 3 background, 3 labels" in out
    assert "of held-out inputs (N=30) at accuracy" in out and "95% CI" in out
    assert "lower bound" in out and "out-of-scope stand-ins" in out and "N=3)" in out
    assert "too few to vouch" not in trained.stderr  # background speaks for unseen traffic


def test_a_target_the_data_cannot_vouch_for_says_so(project):  # noqa: F811
    folder, _ = project
    assert label().exit_code == 0
    trained = runner.invoke(
        cli, ["distill", "student", "intents", "--out", "s.joblib", "--target-accuracy", "0.99"]
    )
    assert trained.exit_code == 0, trained.output
    assert "answers 0.0% of held-out inputs (N=30)" in trained.stdout
    assert "always defers" in trained.stderr and "Label more examples" in trained.stderr
    caveat = " ".join(trained.stderr.split())
    assert "3 labels are too few to vouch for the out-of-scope rate at 0.99 (99+ needed)" in caveat
    assert "distill label --out-of-scope" in caveat and "--background FILE" in caveat
    assert Path(folder / "s.joblib").exists()


def test_out_of_scope_labelling_counts_what_the_teacher_refused(project):  # noqa: F811
    folder, upstream = project
    upstream.queue.clear()
    upstream.enqueue(
        *(Script(text="none" if i % 10 == 0 else intent) for i, (_, intent) in enumerate(PAIRS))
    )
    result = label("--out-of-scope")
    assert result.exit_code == 0, result.output
    assert "out of scope" in result.stdout
    bank = ExampleBank.open("intents")
    assert bank.background_count() == 3 and len(bank) == len(PAIRS) - 3
    (folder / "notes.yaml").write_text("name: notes\nkind: summarize\n")
    wrong = runner.invoke(
        cli, ["distill", "notes.yaml", "--teacher", "big", "--inputs", "in.jsonl", "--out-of-scope"]
    )
    assert wrong.exit_code == 1 and "needs a classify task" in wrong.output
