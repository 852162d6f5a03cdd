"""Threshold calibration for a target accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.stats import wilson_bound
from smallfirst.routing.thresholds import calibrate_threshold


def test_keeps_the_most_traffic_that_meets_the_target():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    result = calibrate_threshold(scores, correct, 0.8, level=None)
    assert result.threshold == 0.5 and result.kept_share == pytest.approx(5 / 6)
    assert result.kept_accuracy == pytest.approx(0.8) and result.achievable
    assert result.kept_n == 5 and result.lower_bound == pytest.approx(0.8)
    strict = calibrate_threshold(scores, correct, 1.0, level=None)
    assert strict.threshold == 0.7 and strict.kept_share == 0.5


def test_ties_are_never_split():
    scores = np.array([0.9, 0.5, 0.5, 0.5])
    correct = np.array([1, 1, 0, 0], dtype=bool)
    result = calibrate_threshold(scores, correct, 0.9, level=None)
    assert result.threshold == 0.9 and result.kept_share == 0.25


def test_the_lower_bound_not_the_point_estimate_must_meet_the_target():
    # 100 answers by score: the top 40 all right, then 1 wrong in every 5 (cumulative ~0.9)
    scores = np.linspace(1.0, 0.0, 100, endpoint=False)
    correct = np.ones(100, dtype=bool)
    correct[40::5] = False
    point = calibrate_threshold(scores, correct, 0.9, level=None)
    bounded = calibrate_threshold(scores, correct, 0.9)
    assert point.kept_accuracy >= 0.9 and point.kept_n > bounded.kept_n
    assert bounded.threshold > point.threshold and bounded.achievable
    assert bounded.lower_bound >= 0.9 and bounded.level == 0.95
    right = round(bounded.kept_accuracy * bounded.kept_n)
    assert bounded.lower_bound == pytest.approx(float(wilson_bound(right, bounded.kept_n)))
    # at the point-estimate threshold the bound falls short: that is what gets refused
    assert wilson_bound(round(point.kept_accuracy * point.kept_n), point.kept_n) < 0.9


def test_few_perfect_answers_cannot_reach_a_high_target():
    scores, correct = np.array([0.9, 0.8, 0.7]), np.ones(3, dtype=bool)
    assert calibrate_threshold(scores, correct, 0.97, level=None).kept_share == 1.0
    result = calibrate_threshold(scores, correct, 0.97)
    assert not result.achievable and result.kept_share == 0.0


def test_a_cascade_target_bounds_the_whole_cascade():
    scores = np.linspace(1.0, 0.0, 200, endpoint=False)
    small = np.arange(200) < 150
    large = np.ones(200, dtype=bool)
    result = calibrate_threshold(scores, small, 0.95, escalated_correct=large)
    assert result.overall_accuracy >= 0.95 and result.lower_bound >= 0.95
    right = round(result.overall_accuracy * 200)
    assert result.lower_bound == pytest.approx(float(wilson_bound(right, 200)))


def test_an_unreachable_target_keeps_nothing():
    result = calibrate_threshold(np.array([0.9, 0.1]), np.array([0, 0], dtype=bool), 0.5)
    assert not result.achievable and result.kept_share == 0.0
    assert result.threshold > 0.9


def test_a_cascade_target_counts_the_escalated_items():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    small = np.array([1, 1, 0, 0], dtype=bool)
    large = np.array([1, 1, 1, 1], dtype=bool)
    result = calibrate_threshold(scores, small, 1.0, escalated_correct=large, level=None)
    assert result.threshold == 0.8 and result.overall_accuracy == 1.0
    loose = calibrate_threshold(scores, small, 0.5, escalated_correct=large, level=None)
    assert loose.kept_share == 1.0 and loose.overall_accuracy == 0.5


@pytest.mark.parametrize(
    ("scores", "correct", "target"),
    [([], [], 0.9), ([0.1], [1, 0], 0.9), ([float("nan")], [1], 0.9), ([0.1], [1], 1.5)],
)
def test_bad_input_is_a_clear_400(scores, correct, target):
    with pytest.raises(InvalidRequestError) as info:
        calibrate_threshold(np.array(scores), np.array(correct, dtype=bool), target)
    assert info.value.status == 400
