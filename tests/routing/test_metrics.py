"""PGR / APGR / CPT / AIQ on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.routing import metrics


def test_hand_computed_curve_apgr_and_cpt() -> None:
    # 4 prompts; the strong model gains on prompts 0 and 1 only. q_weak mean 0.25, q_strong 0.75.
    q_weak = np.array([0.0, 0.0, 1.0, 0.0])
    q_strong = np.array([1.0, 1.0, 1.0, 0.0])
    curve = metrics.pgr_curve(np.array([0.9, 0.1, 0.5, 0.3]), q_weak, q_strong)
    # Order: 0 (+1), 2 (0), 3 (0), 1 (+1) -> PGR 0, .5, .5, .5, 1 at shares 0, .25, .5, .75, 1.
    np.testing.assert_allclose(curve.share, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.pgr, [0, 0.5, 0.5, 0.5, 1.0])
    # Area: .25*(0+.5)/2 + .25*.5 + .25*.5 + .25*(.5+1)/2 = .0625 + .125 + .125 + .1875
    assert metrics.apgr(curve) == pytest.approx(0.5)
    assert metrics.cpt(curve, 0.5) == pytest.approx(0.25)
    # PGR 0.8 lies between share .75 (0.5) and 1.0 (1.0): .75 + .3/.5 * .25 = 0.9
    assert metrics.cpt(curve, 0.8) == pytest.approx(0.9)


def test_oracle_reaches_full_gap_at_the_share_of_prompts_that_need_strong() -> None:
    rng = np.random.default_rng(0)
    q_weak = np.zeros(100)
    q_strong = (rng.random(100) < 0.3).astype(float)
    p = q_strong.mean()
    report = metrics.two_model_report(metrics.oracle_scores(q_weak, q_strong), q_weak, q_strong)
    # Rises linearly to 1 at share p, then stays: area 1 - p/2.
    assert report.apgr == pytest.approx(1 - p / 2)
    assert report.cpt50 == pytest.approx(p / 2)
    assert report.cpt80 == pytest.approx(0.8 * p)


def test_oracle_apgr_tends_to_one_when_few_prompts_need_the_strong_model() -> None:
    q_weak = np.zeros(1000)
    q_strong = np.zeros(1000)
    q_strong[:2] = 1.0
    report = metrics.two_model_report(metrics.oracle_scores(q_weak, q_strong), q_weak, q_strong)
    assert report.apgr == pytest.approx(0.999)


def test_random_router_is_the_diagonal() -> None:
    rng = np.random.default_rng(1)
    q_weak = (rng.random(500) < 0.6).astype(float)
    q_strong = (rng.random(500) < 0.8).astype(float)
    report = metrics.two_model_report(metrics.random_scores(500), q_weak, q_strong)
    assert report.apgr == pytest.approx(0.5)
    assert report.cpt50 == pytest.approx(0.5)
    assert report.cpt80 == pytest.approx(0.8)
    shuffled = metrics.two_model_report(rng.random(500), q_weak, q_strong)
    assert 0.35 < shuffled.apgr < 0.65


def test_ties_count_as_a_random_order_within_the_tie() -> None:
    q_weak = np.array([0.0, 0.0])
    q_strong = np.array([1.0, 0.0])
    curve = metrics.pgr_curve(np.array([0.5, 0.5]), q_weak, q_strong)
    np.testing.assert_allclose(curve.share, [0, 1])
    assert metrics.apgr(curve) == pytest.approx(0.5)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        metrics.pgr_curve(np.array([]), np.array([]), np.array([]))
    with pytest.raises(ValueError, match="equally long"):
        metrics.pgr_curve(np.array([1.0]), np.array([0.0, 1.0]), np.array([1.0]))


def test_choose_maximises_quality_minus_cost_and_prefers_cheaper_on_ties() -> None:
    pred = np.array([[0.5, 0.9, 0.95], [0.5, 0.5, 0.5]])
    costs = np.array([0.0, 0.5, 1.0])
    assert metrics.choose(pred, costs, 0.0).tolist() == [2, 0]
    assert metrics.choose(pred, costs, 0.2).tolist() == [1, 0]
    assert metrics.choose(pred, costs, 10.0).tolist() == [0, 0]


def test_aiq_of_hand_made_hull() -> None:
    # Points (0, .2), (1, .6), (.5, .3): hull is the line .2 -> .6; mean over [0, 1] is .4.
    points = np.array([[0.0, 0.2], [1.0, 0.6], [0.5, 0.3]])
    assert metrics.aiq(points, 0.0, 1.0) == pytest.approx(0.4, abs=1e-6)
    # A point above the line lifts the hull: (.5, .6) -> flat .6 from .5 on.
    lifted = np.vstack([points, [[0.5, 0.6]]])
    assert metrics.aiq(lifted, 0.0, 1.0) == pytest.approx(0.25 * 0.8 + 0.5 * 0.6, abs=1e-4)


def test_oracle_aiq_beats_single_model_mix() -> None:
    truth = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    costs = np.array([0.1, 1.0])
    mix = metrics.aiq(metrics.single_model_points(truth, costs), 0.1, 1.0)
    oracle = metrics.aiq(metrics.oracle_points(truth, costs), 0.1, 1.0)
    assert mix == pytest.approx(0.5)
    # Oracle: quality .75 already at cost .1*3/4+1/4 = .325; hull from (.1,.5) to (.325,.75).
    assert oracle > 0.7
