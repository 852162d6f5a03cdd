"""Bootstrap intervals on router figures, RouteLLM's saving vs random, and prompt features."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.routing import intervals as ci
from smallfirst.routing import metrics
from smallfirst.routing.prompt_features import (
    FEATURE_NAMES,
    feature_scaler,
    prompt_features,
    with_features,
)


@pytest.fixture(scope="module")
def outcomes():
    rng = np.random.default_rng(0)
    weak = rng.integers(0, 2, 400).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 400)).astype(float)
    noisy = (strong - weak) + rng.normal(0, 0.8, 400)  # a router that knows something
    return weak, strong, noisy


def test_saving_vs_random_is_half_over_cpt50() -> None:
    assert ci.saving_vs_random(0.134) == pytest.approx(3.73, abs=0.01)
    assert ci.saving_vs_random(None) is None
    weak, strong = np.zeros(10), np.ones(10)
    figures = ci.two_model_figures(metrics.random_scores(10), weak, strong)
    assert figures["CPT(50%)"] == pytest.approx(0.5) and figures["saving vs random"] == 1.0


def test_every_figure_has_an_interval_around_its_value(outcomes) -> None:
    weak, strong, noisy = outcomes
    figures = ci.bootstrap_two_model(noisy, weak, strong, resamples=200)
    for key in ci.TWO_MODEL_KEYS:
        e = figures[key]
        assert e is not None and e.low <= e.value <= e.high and e.high > e.low
    assert figures["APGR"].low > 0.5  # beats random, and the interval says so


def test_paired_difference_against_itself_is_zero(outcomes) -> None:
    weak, strong, noisy = outcomes
    same = ci.apgr_difference(noisy, noisy, weak, strong, resamples=50)
    assert same.value == same.low == same.high == 0.0
    better = ci.apgr_difference(strong - weak, noisy, weak, strong, resamples=100)
    assert better.low > 0


def test_aiq_interval_and_the_single_model_hull() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((300, 3))
    costs = np.array([0.1, 0.5, 1.0])
    est = ci.bootstrap_aiq(truth, truth, costs, resamples=30)
    assert est.low <= est.value <= est.high
    assert est.value > ci.single_hull_aiq(truth, costs)  # the oracle beats mixing at random


def test_prompt_features_see_length_code_maths_and_constraints() -> None:
    texts = [
        "hi",
        "def f(x):\n    return x + 1\n",
        "Solve 3x + 4 = 19 and prove it.",
        "Answer in exactly 3 bullet points, at most 20 words, in JSON format.",
        "Which?\nA. one\nB. two\nC. three\nD. four",
    ]
    f = prompt_features(texts)
    assert f.shape == (5, len(FEATURE_NAMES))
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    assert f[1, col["code"]] > 0 and f[0, col["code"]] == 0
    assert f[2, col["maths"]] > 0 and f[3, col["constraint words"]] > f[2, col["constraint words"]]
    assert f[4, col["answer choices"]] > 0 and f[3, col["log chars"]] > f[0, col["log chars"]]
    joined = with_features(np.eye(5, 8, dtype=np.float32), f, feature_scaler(f))
    assert joined.shape == (5, 8 + len(FEATURE_NAMES))
    np.testing.assert_allclose(np.linalg.norm(joined, axis=1), 1.0, rtol=1e-5)
