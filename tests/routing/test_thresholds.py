"""Threshold calibration for a target accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.routing.thresholds import calibrate_threshold


def test_keeps_the_most_traffic_that_meets_the_target():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    result = calibrate_threshold(scores, correct, 0.8)
    assert result.threshold == 0.5 and result.kept_share == pytest.approx(5 / 6)
    assert result.kept_accuracy == pytest.approx(0.8) and result.achievable
    strict = calibrate_threshold(scores, correct, 1.0)
    assert strict.threshold == 0.7 and strict.kept_share == 0.5


def test_ties_are_never_split():
    scores = np.array([0.9, 0.5, 0.5, 0.5])
    correct = np.array([1, 1, 0, 0], dtype=bool)
    result = calibrate_threshold(scores, correct, 0.9)
    assert result.threshold == 0.9 and result.kept_share == 0.25


def test_an_unreachable_target_keeps_nothing():
    result = calibrate_threshold(np.array([0.9, 0.1]), np.array([0, 0], dtype=bool), 0.5)
    assert not result.achievable and result.kept_share == 0.0
    assert result.threshold > 0.9


def test_a_cascade_target_counts_the_escalated_items():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    small = np.array([1, 1, 0, 0], dtype=bool)
    large = np.array([1, 1, 1, 1], dtype=bool)
    result = calibrate_threshold(scores, small, 1.0, escalated_correct=large)
    assert result.threshold == 0.8 and result.overall_accuracy == 1.0
    loose = calibrate_threshold(scores, small, 0.5, escalated_correct=large)
    assert loose.kept_share == 1.0 and loose.overall_accuracy == 0.5


@pytest.mark.parametrize(
    ("scores", "correct", "target"),
    [([], [], 0.9), ([0.1], [1, 0], 0.9), ([float("nan")], [1], 0.9), ([0.1], [1], 1.5)],
)
def test_bad_input_is_a_clear_400(scores, correct, target):
    with pytest.raises(InvalidRequestError) as info:
        calibrate_threshold(np.array(scores), np.array(correct, dtype=bool), target)
    assert info.value.status == 400
