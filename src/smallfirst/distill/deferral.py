"""When the tier-0 student answers: a confidence threshold and a familiarity threshold, together.

The student answers an input only when its calibrated confidence is at least `confidence` AND the
input's similarity to the nearest training example is at least `similarity`. Both are chosen on
held-out data so that

1. the one-sided 95% lower bound of the accuracy of the answered in-scope inputs reaches the
   target (the shared picker, `routing.thresholds.calibrate_threshold`), and
2. out-of-scope stand-ins ("foreign" inputs: examples of labels held out of the model that scored
   them, and background traffic) are answered at most (1 - target) of the time — every such
   answer is wrong. Each source is held to this on its own: background the student has learnt
   as a class is easy to defer and would otherwise dilute the held-out-label stand-ins. This is
   a point rate: the stand-ins are a proxy for unseen traffic, not a sample of it, so a
   sampling bound on them would claim more than it knows.

Among the pairs meeting both, the one answering the most in-scope inputs wins. Without any
foreign inputs (fewer than 4 labels, no background) the familiarity threshold is at least the
least familiar held-out in-scope input: what is stranger than every one of them defers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smallfirst.evaluate.stats import DEFAULT_LEVEL
from smallfirst.routing.thresholds import calibrate_threshold

_CANDIDATES = np.linspace(0.0, 0.5, 51)
"""Familiarity thresholds tried: quantiles 0-50% of the in-scope similarities."""


@dataclass(frozen=True, slots=True)
class Deferral:
    confidence: float
    similarity: float
    answered_n: int
    answered_right: int
    n: int
    lower_bound: float
    foreign_n: int
    foreign_answered_n: int

    @property
    def coverage(self) -> float:
        return self.answered_n / self.n if self.n else 0.0


def calibrate_deferral(
    confidence: np.ndarray,
    correct: np.ndarray,
    similarity: np.ndarray,
    foreign: list[tuple[np.ndarray, np.ndarray]],
    target: float,
    level: float | None = DEFAULT_LEVEL,
) -> Deferral:
    """The (confidence, similarity) thresholds answering the most in-scope inputs (see module).

    `foreign`: one (confidence, similarity) pair of arrays per source of out-of-scope stand-ins.
    """
    confidence, similarity = np.asarray(confidence, float), np.asarray(similarity, float)
    correct = np.asarray(correct, bool)
    groups = [(np.asarray(c, float), np.asarray(s, float)) for c, s in foreign if len(c)]
    f_conf = np.concatenate([c for c, _ in groups]) if groups else np.zeros(0)
    f_sim = np.concatenate([s for _, s in groups]) if groups else np.zeros(0)
    cuts = np.unique(np.quantile(similarity, _CANDIDATES))
    cuts = np.concatenate([[-np.inf], cuts]) if groups else cuts
    best: Deferral | None = None
    for cut in cuts:
        floor = max(
            (_foreign_floor(c[s >= cut], _allowed(len(c), target)) for c, s in groups),
            default=-np.inf,
        )
        keep = (similarity >= cut) & (confidence >= floor)
        choice = _within(confidence, correct, keep, target, level, floor)
        if choice is None:
            continue
        threshold, right, count, bound = choice
        answered = (f_sim >= cut) & (f_conf >= threshold)
        candidate = Deferral(
            confidence=threshold,
            similarity=float(cut),
            answered_n=count,
            answered_right=right,
            n=len(confidence),
            lower_bound=bound,
            foreign_n=len(f_conf),
            foreign_answered_n=int(answered.sum()),
        )
        if best is None or candidate.answered_n > best.answered_n:
            best = candidate
    return best or Deferral(np.inf, np.inf, 0, 0, len(confidence), 0.0, len(f_conf), 0)


def confidence_only(
    confidence: np.ndarray, correct: np.ndarray, target: float, level: float | None
) -> Deferral:
    """The confidence threshold alone (every input counts as familiar): the student before
    familiarity, kept to measure what familiarity buys (`benchmarks/deferral_oos.py`)."""
    confidence = np.asarray(confidence, float)
    choice = _within(confidence, correct, np.ones(len(confidence), bool), target, level, -np.inf)
    if choice is None:
        return Deferral(np.inf, -np.inf, 0, 0, len(confidence), 0.0, 0, 0)
    threshold, right, count, bound = choice
    return Deferral(threshold, -np.inf, count, right, len(confidence), bound, 0, 0)


def _allowed(n: int, target: float) -> int:
    """How many of n foreign inputs may be answered: (1 - target) of them, rounded down."""
    return int(np.floor((1.0 - target) * n + 1e-9))


def _foreign_floor(scores: np.ndarray, allowed: int) -> float:
    """The lowest confidence threshold letting at most `allowed` of these foreign inputs pass."""
    if len(scores) <= allowed:
        return -np.inf
    ranked = np.sort(scores)[::-1]
    return float(np.nextafter(ranked[allowed], np.inf))


def _within(
    confidence: np.ndarray,
    correct: np.ndarray,
    keep: np.ndarray,
    target: float,
    level: float | None,
    floor: float,
) -> tuple[float, int, int, float] | None:
    """The shared lower-bound picker on the kept inputs: (threshold, right, count, bound)."""
    if not keep.any():
        return None
    result = calibrate_threshold(confidence[keep], correct[keep], target, level=level)
    if not result.achievable or result.kept_n == 0:
        return None
    threshold = max(result.threshold, floor)  # never below what the foreign inputs allow
    right = round((result.kept_accuracy or 0.0) * result.kept_n)
    return threshold, right, result.kept_n, float(result.lower_bound or 0.0)
