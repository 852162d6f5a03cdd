"""A labelled stream replayed through the cache: hits are not stored, ambiguous lookups are
no evidence, and calibration finds a threshold (and margin) whose replayed hits meet the
target's lower bound, or none."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.cache.replay import calibrate_margin, calibrate_streams, replay
from smallfirst.cache.thresholds import calibrate


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_hit_is_not_stored_and_counts_right_when_the_answers_match() -> None:
    vectors = unit([[1, 0], [1, 0], [0, 1], [0.8, 0.6]])
    found = replay(vectors, ["a", "a", "b", "b"], None, None)
    assert [right for _, right in found.evidence] == [True, False, False]
    found = replay(vectors, ["a", "a", "b", "b"], 0.75, None)
    assert (found.hits, found.right, found.messages) == (2, 1, 4)


def test_an_ambiguous_lookup_is_neither_a_hit_nor_evidence() -> None:
    vectors = unit([[1, 0], [0.99, 0.14], [1, 0.05]])  # the second misses (0.990 < 0.995)
    answers = ["a", "b", "a"]
    assert replay(vectors, answers, 0.995, None).hits == 1  # the third: a at 0.9988, right
    found = replay(vectors, answers, 0.995, margin=0.05)  # b is at 0.9958: within 0.05
    assert found.hits == 0 and [right for _, right in found.evidence] == [False]
    assert replay(vectors, answers, 0.995, margin=0.001).hits == 1  # b is not within 0.001


def confusable_stream(seed: int, n: int = 2000) -> tuple[np.ndarray, list[str]]:
    """20 topics, ten of them in five pairs close enough to overlap, with different answers.
    Replayed as a cache sees them, no threshold alone reaches 0.9 precision; the neighbours'
    disagreement marks the overlap."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, 16))
    centres[15:] = centres[10:15] + 0.2 * rng.normal(size=(5, 16))
    topics = rng.integers(0, 20, n)
    topics[rng.random(n) < 0.5] //= 2  # as many messages on clean topics as confusable
    vectors = unit(centres[topics] + 0.2 * rng.normal(size=(n, 16)))
    return vectors, [f"t{t}" for t in topics]


def test_calibration_with_the_check_reaches_a_target_the_threshold_alone_cannot() -> None:
    streams = [confusable_stream(seed) for seed in range(2)]
    assert not calibrate_margin(streams, 0.9, None).calibration.achievable
    on = calibrate_streams(streams, 0.9)
    assert on.margin is not None and on.calibration.achievable
    assert on.calibration.lower_bound is not None and on.calibration.lower_bound >= 0.9
    assert on.calibration.kept_n > 0.5 * on.lookups
    for seed in (7, 8):  # streams it never saw
        found = replay(*confusable_stream(seed), on.calibration.threshold, on.margin)
        assert found.hits > 0.5 * found.messages and found.right / found.hits >= 0.95


def test_evidence_with_every_message_stored_overstates_the_precision() -> None:
    """Stored, each topic of a pair has entries beside the other's and the nearest is mostly
    right; a cache stores only its misses, so a topic answered (wrongly) from its twin's
    entries may never get its own."""
    streams = [confusable_stream(seed) for seed in range(2)]
    stored_all = calibrate([pair for s in streams for pair in replay(*s, None, None).evidence], 0.9)
    assert stored_all.achievable
    served = [replay(*s, stored_all.threshold, None) for s in streams]
    assert sum(r.right for r in served) / sum(r.hits for r in served) < 0.85
    assert not calibrate_margin(streams, 0.9, None).calibration.achievable


def test_the_replays_hits_at_the_threshold_meet_its_bound() -> None:
    streams = [confusable_stream(3)]
    found = calibrate_margin(streams, 0.9, 0.05)
    assert found.calibration.achievable
    again = replay(*streams[0], found.calibration.threshold, 0.05)
    assert again.hits == found.calibration.kept_n
    assert again.right / again.hits == pytest.approx(found.calibration.kept_accuracy)
    assert found.lookups == len(streams[0][1]) - 1


def test_no_margin_reaching_the_target_keeps_nothing() -> None:
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(300, 8)))
    answers = [str(rng.integers(0, 2)) for _ in range(300)]  # coin flips: nothing is learnable
    found = calibrate_streams([(vectors, answers)], 0.99)
    assert not found.calibration.achievable and found.margin is None
