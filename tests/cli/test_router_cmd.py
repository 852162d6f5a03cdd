"""`smallfirst router train | eval | calibrate | decide` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.routing.router_file import load_router_file
from tests.routing.synthetic import synthetic_rows, write_csv

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["router", *[str(a) for a in args]])


def test_train_decide_calibrate_eval(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "outcomes.csv", synthetic_rows(5))
    out = tmp_path / "router.json"
    result = _invoke("train", data, "--out", out, "--embedder", "minilm", "--k", "5")
    assert result.exit_code == 0, result.output
    assert "trained knn router on 40 prompts x 2 models" in result.output
    assert "of traffic to large" in result.output

    decided = _invoke("decide", out, "Solve the equation 3x + 4 = 19 for x.")
    assert decided.exit_code == 0 and decided.output.splitlines()[0] == "large"

    prompts = tmp_path / "traffic.jsonl"
    prompts.write_text(
        "\n".join(json.dumps({"prompt": r["prompt"]}) for r in synthetic_rows(3, 30))
    )
    calibrated = _invoke("calibrate", out, "--large-share", "0.5", "--prompts", prompts)
    assert calibrated.exit_code == 0, calibrated.output
    assert "~50% of traffic to large (calibrated on 24 prompts" in calibrated.output
    assert load_router_file(out).calibration.method == "large-share"

    png = tmp_path / "curves.png"
    evaluated = _invoke("eval", data, "--router", out, "--plot", png, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert png.exists() and '"APGR"' in evaluated.output


def test_eval_cross_validation_on_csv(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "outcomes.csv", synthetic_rows(5))
    result = _invoke(
        "eval",
        data,
        "--embedder",
        "minilm",
        "--kind",
        "linear",
        "--folds",
        "3",
        "--plot",
        tmp_path / "p.png",
        "--cost",
        "small=0.1",
        "--cost",
        "large=2",
    )
    assert result.exit_code == 0, result.output
    assert "linear/minilm (3-fold CV, in domain)" in result.output and "random" in result.output
    assert "saving vs random" in result.output and "APGR" in result.output


def test_bad_inputs_fail_with_a_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = _invoke("train", empty, "--out", tmp_path / "r.json")
    assert result.exit_code == 1 and "the file is empty" in result.output

    data = write_csv(tmp_path / "o.csv", synthetic_rows(2))
    unknown = _invoke("train", data, "--models", "small,huge", "--embedder", "minilm")
    assert unknown.exit_code == 1 and "unknown model column(s) ['huge']" in unknown.output
    bad_cost = _invoke("eval", data, "--cost", "nobody=3", "--embedder", "minilm")
    assert bad_cost.exit_code == 1 and "'nobody' is not one of" in bad_cost.output

    missing = _invoke(
        "calibrate", tmp_path / "none.json", "--large-share", "0.2", "--prompts", data
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    both = _invoke("calibrate", tmp_path / "none.json", "--prompts", data)
    assert both.exit_code == 1 and "exactly one of --large-share or --quality-target" in both.output


def test_eval_out_of_domain_picks_the_kind_on_training_folds_only(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "a.csv", synthetic_rows(6))
    test = tmp_path / "b.csv"
    rows = synthetic_rows(4, offset=40)
    test.write_text(
        "prompt,small,large,other\n"
        + "".join(f'"{r["prompt"]}",{r["small"]},{r["large"]},\n' for r in rows)
        + '"a row without scores",,,\n'
    )
    result = _invoke(
        "eval",
        "--train",
        train,
        "--test",
        test,
        "--models",
        "small,large",
        "--kind",
        "auto",
        "--embedder",
        "minilm",
        "--resamples",
        "200",
        "--plot",
        tmp_path / "p.png",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "skipped 1 row(s) missing a score" in result.output
    assert "on a.csv's inner folds" in result.output
    payload = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    label = next(k for k in payload if "(trained on a.csv)" in k and "interval" not in k)
    low, high = payload[f"{label} interval"]["APGR"]
    assert low <= payload[label]["APGR"] <= high
    assert payload[label]["APGR"] > payload["random"]["APGR"]


def test_eval_needs_train_and_test_together(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "o.csv", synthetic_rows(2))
    result = _invoke("eval", "--train", data)
    assert result.exit_code == 1 and "give both --train and --test" in result.output
    neither = _invoke("eval")
    assert neither.exit_code == 1 and "give OUTCOMES" in neither.output
