"""Held-out requests stand for the traffic: audited student answers weigh 1 / audit rate."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.config import LearnConfig
from smallfirst.learning.candidates import rate_estimate, request_weights, weighted_estimate
from smallfirst.learning.cases import Case


def test_equal_weights_are_the_plain_estimate() -> None:
    good = np.array([True] * 97 + [False] * 3)
    plain, weighted = rate_estimate(97, 100, 0.95), weighted_estimate(good, np.ones(100), 0.95)
    assert weighted.agreement == pytest.approx(plain.agreement)
    assert weighted.lower == pytest.approx(plain.lower)
    assert weighted.upper == pytest.approx(plain.upper)
    assert weighted.n == 100


def test_audited_answers_stand_for_the_answers_never_checked() -> None:
    """A student answering most traffic leaves the large model the inputs it defers (always
    'agreeing') and 1 in 20 of its answers (audits): 3 wrong audits of 10 are 60 wrong answers
    in the traffic, not 3 in 100."""
    config = LearnConfig(audit_rate=0.05)
    held = [Case(f"d{i}", i, "x", "a") for i in range(90)]
    held += [Case(f"a{i}", 100 + i, "x", "a", audited=True) for i in range(10)]
    weights = request_weights(held, config)
    assert list(weights[:90]) == [1.0] * 90 and list(weights[90:]) == [20.0] * 10
    good = np.array([True] * 90 + [True] * 7 + [False] * 3)
    estimate = weighted_estimate(good, weights, 0.95)
    assert estimate.agreement == pytest.approx((90 + 7 * 20) / (90 + 10 * 20))
    assert estimate.lower < estimate.agreement < 0.95 < rate_estimate(97, 100, 0.95).agreement
    assert estimate.upper < 0.95  # proven below a 0.95 target, where the plain count passed it
