"""Thresholds from a share of large calls or a quality target, checked on held-out prompts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smallfirst.routing.calibration import (
    calibrate_quality,
    calibrate_share,
    large_share,
    load_prompts,
    mean_quality,
    meets_quality,
)
from smallfirst.routing.learned import predict_conversations, train_router
from smallfirst.routing.outcomes import Outcomes, OutcomesError, load_outcomes
from tests.conftest import shared_data
from tests.routing.synthetic import synthetic_rows, write_csv


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cal")
    train = load_outcomes(write_csv(folder / "train.csv", synthetic_rows(8)))
    held = load_outcomes(write_csv(folder / "held.csv", synthetic_rows(8, offset=20)))
    router = train_router(train, "knn", "minilm", k=7)
    return router, held, predict_conversations(router, held.turns)


def test_ties_never_overshoot_the_requested_share(trained) -> None:
    router, _, pred = trained
    # Synthetic predictions come in two tight clusters: 50% maths, 50% greetings.
    cal = calibrate_share(router, pred, 0.5, "held")
    assert cal.large_share == pytest.approx(0.5)
    assert "~50% of traffic to large" in cal.explanation
    assert calibrate_share(router, pred, 0.25, "held").large_share <= 0.25


@pytest.fixture(scope="module")
def gsm8k_router():
    file = shared_data("routing", "routellm", "gsm8k__gsm8k_responses.csv")
    outcomes = load_outcomes(file).subset(range(600))
    router = train_router(outcomes.subset(range(300)), "linear", "minilm")
    return router, predict_conversations(router, outcomes.subset(range(300, 600)).turns)


@pytest.mark.parametrize("share", [0.1, 0.2, 0.5])
def test_large_share_is_hit_on_held_out_prompts(gsm8k_router, share: float) -> None:
    router, pred = gsm8k_router
    # Calibrate on one half of unseen traffic, check the share on the other half.
    cal = calibrate_share(router, pred[:150], share, "first half")
    assert cal.large_share == pytest.approx(share, abs=0.01)
    assert large_share(router, pred[150:], cal.threshold) == pytest.approx(share, abs=0.08)
    assert f"~{share * 100:.0f}% of traffic to gpt-4-1106-preview" in cal.explanation


def test_quality_target_measured_and_predicted(trained) -> None:
    router, held, pred = trained
    truth = held.scores
    cal = calibrate_quality(router, pred, 0.95, "held", truth)
    assert mean_quality(router, pred, truth, cal.threshold) >= 0.95 * truth.mean(axis=0).max()
    # Maths is half the traffic and needs the large model: about half goes large, not all.
    assert 0.3 < cal.large_share < 0.8
    assert "quality ~" in cal.explanation and "measured" in cal.source
    predicted = calibrate_quality(router, pred, 0.9, "held")
    assert predicted.quality_share >= 0.9 - 1e-9


def test_quality_target_is_met_on_the_lower_bound(gsm8k_router) -> None:
    router, pred = gsm8k_router
    truth = (pred > np.median(pred, axis=0)).astype(float)  # a measured 0/1 outcome per model
    point = calibrate_quality(router, pred, 0.95, "held", truth, level=None)
    bounded = calibrate_quality(router, pred, 0.95, "held", truth)
    # stricter: a lower threshold sends more to the large model, never less
    assert bounded.threshold <= point.threshold
    assert bounded.large_share >= point.large_share
    assert meets_quality(router, pred, truth, bounded.threshold, 0.95)
    assert "lower bound" in bounded.explanation and "N=300" in bounded.explanation
    assert "lower bound" not in point.explanation


def test_out_of_range_targets_are_rejected(trained) -> None:
    router, _, pred = trained
    with pytest.raises(OutcomesError, match="between 0 and 1"):
        calibrate_share(router, pred, 1.5, "x")
    with pytest.raises(OutcomesError, match=r"in \(0, 1\]"):
        calibrate_quality(router, pred, 0.0, "x")


def test_prompt_files_in_three_formats(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(
        json.dumps({"prompt": "a"})
        + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "b"}]})
    )
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    (tmp_path / "p.csv").write_text("prompt\nx\n")
    assert load_prompts(tmp_path / "p.jsonl") == [["a"], ["b"]]
    assert load_prompts(tmp_path / "p.txt") == [["one"], ["two"]]
    assert load_prompts(tmp_path / "p.csv") == [["x"]]
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(OutcomesError, match="no prompts"):
        load_prompts(tmp_path / "e.jsonl")
    (tmp_path / "k.jsonl").write_text(json.dumps({"body": "x"}))
    with pytest.raises(OutcomesError, match="no prompt/messages"):
        load_prompts(tmp_path / "k.jsonl")


def test_outcomes_type_is_reusable(trained) -> None:
    _, held, _ = trained
    assert isinstance(held, Outcomes)


def test_unreachable_quality_target_is_an_error_saying_what_is_reachable(trained) -> None:
    """Issue 22: threshold 0 was never tried, so an unreachable target silently returned 0."""
    router, held, pred = trained
    # Only the large model is ever right, but the router sends greetings to the small one.
    wrong = np.tile([0.0, 1.0], (len(held), 1))
    with pytest.raises(OutcomesError, match="not reachable") as err:
        calibrate_quality(router, pred, 0.95, "held", wrong)
    reachable = float(str(err.value).split("reachable on the 95% lower bound is ")[1][:5])
    assert 0.0 <= reachable < 0.95
    cal = calibrate_quality(router, pred, max(reachable, 0.001), "held", wrong)
    assert meets_quality(router, pred, wrong, cal.threshold, max(reachable, 0.001))


def test_threshold_zero_is_tried(trained) -> None:
    router, held, pred = trained
    truth = held.scores
    need_all = calibrate_quality(router, pred, 1.0, "held", truth, level=None)
    assert meets_quality(router, pred, truth, need_all.threshold, 1.0, level=None)
