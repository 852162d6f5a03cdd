"""Set a check's threshold from labelled data so the kept answers reach a target accuracy.

The parameter is a quality target, not a bare float: "keep the small model's answer when the
answers kept this way are at least 90% right" (or, given how the next rung does on the same
items, "the whole cascade is at least 90% right"), and the threshold keeping the most traffic
on the small rung while meeting it is chosen.

"Meeting it" means the one-sided 95% Wilson lower bound of that accuracy reaches the target, not
the point estimate: a threshold picked on the point estimate misses the target on new data about
half the time, and on a small calibration set by a lot. `level=None` restores the point rule.
This is the one threshold picker: checks, the tier-0 student and (later) the semantic cache use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.stats import DEFAULT_LEVEL, wilson_bound


@dataclass(slots=True)
class Calibration:
    threshold: float
    target_accuracy: float
    kept_share: float
    """Share of the calibration items the rung keeps at this threshold."""
    kept_accuracy: float | None
    """Accuracy of the kept answers (None when nothing is kept)."""
    overall_accuracy: float | None
    """Cascade accuracy when the escalated items' outcomes were given, else None."""
    n: int
    achievable: bool
    """False when no threshold reaches the target: the threshold then keeps nothing."""
    kept_n: int = 0
    """How many calibration items the rung keeps (the N behind `kept_accuracy`)."""
    lower_bound: float | None = None
    """One-sided lower bound of the targeted accuracy (kept, or cascade) at this threshold."""
    level: float | None = DEFAULT_LEVEL
    """Confidence level of `lower_bound`; None when the point estimate was used."""


def calibrate_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    target_accuracy: float,
    escalated_correct: np.ndarray | None = None,
    level: float | None = DEFAULT_LEVEL,
) -> Calibration:
    """The lowest threshold (most traffic kept) whose accuracy's lower bound reaches the target.

    Without `escalated_correct` the target is the accuracy of the kept answers; with it (whether
    the next rung got each item right) the target is the accuracy of the whole cascade. The
    bound is one-sided Wilson at `level` (None: the point estimate).
    """
    scores, correct = _validate(scores, correct, target_accuracy)
    order = np.argsort(-scores, kind="stable")
    ranked, right = scores[order], correct[order].astype(float)
    n = len(ranked)
    kept_right = np.concatenate([[0.0], np.cumsum(right)])
    counts = np.arange(n + 1)
    if escalated_correct is None:
        right, total = kept_right, counts
    else:
        escalated = np.asarray(escalated_correct, dtype=float)[order]
        later_right = np.concatenate([np.cumsum(escalated[::-1])[::-1], [0.0]])
        right, total = kept_right + later_right, np.full(n + 1, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(total > 0, right / np.maximum(total, 1), np.nan)
    bound = accuracy if level is None else wilson_bound(right, total, level)
    bound = np.where(total > 0, bound, np.nan)
    cuts = _valid_cuts(ranked)
    good = [k for k in cuts if not np.isnan(bound[k]) and bound[k] >= target_accuracy]
    if not good:
        return _unreachable(ranked, target_accuracy, n, accuracy, escalated_correct, level)
    k = max(good)
    threshold = float(ranked[k - 1]) if k > 0 else float(np.nextafter(ranked[0], np.inf))
    return Calibration(
        threshold=threshold,
        target_accuracy=target_accuracy,
        kept_share=k / n,
        kept_accuracy=float(kept_right[k] / k) if k else None,
        overall_accuracy=None if escalated_correct is None else float(accuracy[k]),
        n=n,
        achievable=True,
        kept_n=k,
        lower_bound=float(bound[k]),
        level=level,
    )


def _validate(
    scores: np.ndarray, correct: np.ndarray, target: float
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if len(scores) == 0 or len(scores) != len(correct):
        raise InvalidRequestError("calibration needs one score per labelled answer, at least one")
    if np.isnan(scores).any():
        raise InvalidRequestError("calibration scores contain missing values")
    if not 0.0 < target <= 1.0:
        raise InvalidRequestError(f"target accuracy must be in (0, 1], got {target}")
    return scores, correct


def _valid_cuts(ranked: np.ndarray) -> list[int]:
    """Keep-the-top-k cuts a threshold can express: never between two equal scores."""
    n = len(ranked)
    return [k for k in range(n + 1) if k in (0, n) or ranked[k - 1] > ranked[k]]


def _unreachable(
    ranked: np.ndarray,
    target: float,
    n: int,
    accuracy: np.ndarray,
    escalated_correct: np.ndarray | None,
    level: float | None,
) -> Calibration:
    return Calibration(
        threshold=float(np.nextafter(ranked[0], np.inf)),
        target_accuracy=target,
        kept_share=0.0,
        kept_accuracy=None,
        overall_accuracy=None if escalated_correct is None else float(accuracy[0]),
        n=n,
        achievable=False,
        level=level,
    )
