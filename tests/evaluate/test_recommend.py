"""The recommendation: cheapest candidate whose lower bound meets the bar."""

from __future__ import annotations

import math

import pytest

from smallfirst.evaluate.recommend import CandidateSummary, recommend
from smallfirst.evaluate.stats import Estimate


def _c(name, value, low, usd, p50):
    return CandidateSummary(name, Estimate(value, low, min(1.0, value + 0.03)), usd, p50)


def test_cheapest_passing_candidate_wins_with_ratios_against_the_priciest():
    summaries = [
        _c("big", 0.95, 0.93, usd=4.1, p50=1.6),
        _c("mid", 0.92, 0.905, usd=0.5, p50=0.8),
        _c("small", 0.93, 0.90, usd=0.1, p50=0.5),
    ]
    rec = recommend(summaries, "accuracy", 0.9)
    assert rec.winner == "small"
    assert rec.passing == ["big", "mid", "small"]
    top = rec.comparisons[0]
    assert top.other == "big"
    assert top.cost_ratio == pytest.approx(41.0)
    assert top.latency_ratio == pytest.approx(3.2)
    assert rec.message.startswith("small: 41x cheaper and 3.2x faster than big at accuracy 0.930")


def test_point_estimate_above_bar_is_not_enough():
    summaries = [_c("lucky", 0.95, 0.85, usd=0.0, p50=0.1), _c("big", 0.96, 0.92, 5.0, 1.0)]
    rec = recommend(summaries, "accuracy", 0.9)
    assert rec.winner == "big"
    assert rec.comparisons[0].other == "lucky"
    assert rec.comparisons[0].cost_ratio == 0.0
    assert rec.message == (
        "big meets the bar at accuracy 0.960 [0.920, 0.990]; every cheaper candidate misses it"
    )


def test_free_winner_is_infinitely_cheaper():
    summaries = [_c("local", 0.93, 0.91, 0.0, 0.2), _c("cloud", 0.95, 0.92, 2.0, 0.4)]
    rec = recommend(summaries, "accuracy", 0.9)
    assert rec.winner == "local"
    assert math.isinf(rec.comparisons[0].cost_ratio)
    assert rec.to_json()["comparisons"][0]["cost_ratio"] is None
    assert "free" in rec.message and "2x faster" in rec.message


def test_ties_on_cost_go_to_the_faster():
    summaries = [_c("slow", 0.93, 0.91, 0.0, 2.0), _c("fast", 0.93, 0.91, 0.0, 1.0)]
    assert recommend(summaries, "accuracy", 0.9).winner == "fast"


def test_nobody_passes_names_the_best_lower_bound():
    summaries = [_c("a", 0.80, 0.70, 0.0, 0.1), _c("b", 0.88, 0.85, 1.0, 0.5)]
    rec = recommend(summaries, "accuracy", 0.9)
    assert rec.winner is None
    assert rec.passing == []
    assert "no candidate meets accuracy >= 0.9" in rec.message
    assert "b at accuracy" in rec.message


def test_a_candidate_that_defers_never_wins_alone_but_its_cascade_can():
    student = CandidateSummary("student", Estimate(1.0, 0.97, 1.0), 0.0, 0.01, defers=True)
    cascade = CandidateSummary(
        "student, then big", Estimate(0.96, 0.93, 0.98), 0.8, 0.3, parts=("student", "big")
    )
    big = _c("big", 0.97, 0.95, usd=4.0, p50=1.0)
    rec = recommend([student, big, cascade], "accuracy", 0.9)
    assert rec.winner == "student, then big" and rec.winner_rungs == ["student", "big"]
    assert "student" not in rec.passing and [c.other for c in rec.comparisons] == ["big"]
    alone = recommend([student], "accuracy", 0.9)
    assert alone.winner is None and "answers every input" in alone.message
