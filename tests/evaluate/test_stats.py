"""Bootstrap intervals: contain the estimate, narrow with n, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.evaluate.metrics import MeanMetric
from smallfirst.evaluate.stats import bootstrap, estimate, percentile, resample_indices, wilson


def _coin(n: int, p: float = 0.8, seed: int = 1) -> MeanMetric:
    rng = np.random.default_rng(seed)
    return MeanMetric("accuracy", (rng.random(n) < p).astype(float))


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_interval_contains_the_point_estimate(n):
    estimate = bootstrap(_coin(n), n)
    assert estimate.low <= estimate.value <= estimate.high
    assert estimate.low < estimate.high


def test_interval_narrows_as_the_sample_grows():
    widths = [(lambda e: e.high - e.low)(bootstrap(_coin(n), n)) for n in (25, 250, 2500)]
    assert widths[0] > widths[1] > widths[2]
    # roughly 1/sqrt(n): ten times the data, about a third of the width
    assert widths[1] / widths[0] == pytest.approx(10**-0.5, rel=0.35)


def test_same_seed_same_resamples_other_seed_differs():
    metric = _coin(50)
    assert bootstrap(metric, 50, seed=3) == bootstrap(metric, 50, seed=3)
    same = zip(resample_indices(50, 100, 3), resample_indices(50, 100, 3), strict=True)
    assert all(np.array_equal(a, b) for a, b in same)
    other = zip(resample_indices(50, 100, 3), resample_indices(50, 100, 4), strict=True)
    assert not all(np.array_equal(a, b) for a, b in other)


def test_a_perfect_small_sample_does_not_pass_every_bar():
    # the bootstrap collapses to [1, 1]; the Wilson interval used for rates does not
    metric = MeanMetric("accuracy", np.ones(4))
    boot = bootstrap(metric, 4)
    assert (boot.low, boot.value, boot.high) == (1.0, 1.0, 1.0)
    rate = estimate(metric, 4)
    assert rate.method == "wilson"
    assert rate.value == 1.0 and rate.high == 1.0
    assert rate.low == pytest.approx(0.5101, abs=1e-4)


def test_wilson_by_hand():
    low, high = wilson(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson(0, 10)[0] == 0.0


def test_non_binary_metrics_are_bootstrapped():
    metric = MeanMetric("rouge_l", np.linspace(0.2, 0.9, 40))
    result = estimate(metric, 40)
    assert result.method == "bootstrap"
    assert result.low < result.value < result.high


def test_percentile():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([], 95) == 0.0
