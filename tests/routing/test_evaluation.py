"""Cross-validated evaluation, the report table and the PNG plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smallfirst.routing.evaluation import cross_validate, evaluate, format_report, plot
from smallfirst.routing.features import embed_conversations, router_embedder
from smallfirst.routing.outcomes import Outcomes, load_outcomes
from tests.routing.synthetic import synthetic_rows, write_csv


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcomes, np.ndarray]:
    folder = tmp_path_factory.mktemp("ev")
    outcomes = load_outcomes(write_csv(folder / "o.csv", synthetic_rows(5)))
    return outcomes, embed_conversations(router_embedder("minilm"), outcomes.turns)


def test_two_model_report_beats_random_and_plots(synthetic, tmp_path: Path) -> None:
    outcomes, vectors = synthetic
    pred, folds = cross_validate(outcomes, vectors, "knn", "minilm", folds=5, k=5)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(outcomes)))
    report = evaluate(outcomes, pred, "knn")
    rows = dict(report.rows)
    assert rows["random"]["APGR"] == pytest.approx(0.5)
    assert rows["knn"]["APGR"] > 0.7
    assert rows["oracle"]["APGR"] >= rows["knn"]["APGR"]
    text = format_report(report)
    assert "CPT(50%)" in text and "strong only: large" in text
    png = plot(report, tmp_path / "curves.png", "synthetic")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_n_model_report_has_aiq_beside_baselines(synthetic, tmp_path: Path) -> None:
    outcomes, vectors = synthetic
    three = Outcomes(
        outcomes.turns,
        ["small", "mid", "large"],
        np.column_stack(
            [outcomes.scores[:, 0], 0.8 * outcomes.scores[:, 1], outcomes.scores[:, 1]]
        ),
        costs={"small": 0.1, "mid": 0.5, "large": 2.0},
    )
    pred, _ = cross_validate(three, vectors, "linear", "minilm", folds=4)
    report = evaluate(three, pred, "linear")
    rows = dict(report.rows)
    assert rows["linear"]["AIQ"] > rows["random mix (single-model hull)"]["AIQ"]
    assert rows["oracle"]["AIQ"] >= rows["linear"]["AIQ"] - 1e-9
    best = next(v for k, v in report.rows if k.startswith("best single: large"))
    assert best["quality"] == pytest.approx(1.0)
    assert plot(report, tmp_path / "n.png").exists()


def test_groups_stay_in_one_fold(synthetic) -> None:
    outcomes, vectors = synthetic
    outcomes.groups = [str(i // 2) for i in range(len(outcomes))]
    _, folds = cross_validate(outcomes, vectors, "knn", "minilm", folds=5)
    for held in folds:
        groups = {outcomes.groups[i] for i in held}
        assert sum(1 for g in outcomes.groups if g in groups) == len(held)
    outcomes.groups = None
