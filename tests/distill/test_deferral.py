"""Choosing the confidence and familiarity thresholds together."""

import numpy as np

from smallfirst.distill.deferral import calibrate_deferral, confidence_only


def test_each_source_of_stand_ins_is_held_to_the_rate_on_its_own():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 400)
    similarity = rng.uniform(0.6, 1.0, 400)
    correct = np.ones(400, dtype=bool)
    # held-out-label stand-ins: confident and fairly familiar; background: easy to defer
    held = (rng.uniform(0.5, 1.0, 100), rng.uniform(0.4, 0.8, 100))
    background = (np.zeros(900), rng.uniform(0.0, 0.3, 900))
    both = calibrate_deferral(confidence, correct, similarity, [held, background], 0.95)
    answered = (held[0] >= both.confidence) & (held[1] >= both.similarity)
    assert answered.mean() <= 0.05  # pooled with 900 easy ones, 5% of 1000 would allow 50
    alone = calibrate_deferral(confidence, correct, similarity, [held], 0.95)
    assert (both.confidence, both.similarity) == (alone.confidence, alone.similarity)
    assert both.foreign_n == 1000 and 0 < both.coverage < 1


def test_without_stand_ins_the_least_familiar_held_out_input_is_the_floor():
    confidence, similarity = np.full(50, 0.9), np.linspace(0.5, 1.0, 50)
    result = calibrate_deferral(confidence, np.ones(50, bool), similarity, [], 0.9)
    assert result.similarity == 0.5 and result.coverage == 1.0 and result.foreign_n == 0
    plain = confidence_only(confidence, np.ones(50, bool), 0.9, None)
    assert plain.similarity == -np.inf and plain.answered_n == 50
