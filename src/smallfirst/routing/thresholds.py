"""Set a check's threshold from labelled data so the kept answers reach a target accuracy.

The parameter is a quality target, not a bare float: "keep the small model's answer when the
answers kept this way are at least 90% right" (or, given how the next rung does on the same
items, "the whole cascade is at least 90% right"), and the threshold keeping the most traffic
on the small rung while meeting it is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smallfirst.errors import InvalidRequestError


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


def calibrate_threshold(
    scores: np.ndarray,
    correct: np.ndarray,
    target_accuracy: float,
    escalated_correct: np.ndarray | None = None,
) -> Calibration:
    """The lowest threshold (most traffic kept) whose accuracy reaches `target_accuracy`.

    Without `escalated_correct` the target is the accuracy of the kept answers; with it (whether
    the next rung got each item right) the target is the accuracy of the whole cascade.
    """
    scores, correct = _validate(scores, correct, target_accuracy)
    order = np.argsort(-scores, kind="stable")
    ranked, right = scores[order], correct[order].astype(float)
    n = len(ranked)
    kept_right = np.concatenate([[0.0], np.cumsum(right)])
    counts = np.arange(n + 1)
    if escalated_correct is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(counts > 0, kept_right / np.maximum(counts, 1), np.nan)
    else:
        escalated = np.asarray(escalated_correct, dtype=float)[order]
        later_right = np.concatenate([np.cumsum(escalated[::-1])[::-1], [0.0]])
        accuracy = (kept_right + later_right) / n
    cuts = _valid_cuts(ranked)
    good = [k for k in cuts if not np.isnan(accuracy[k]) and accuracy[k] >= target_accuracy]
    if not good:
        return _unreachable(ranked, target_accuracy, n, accuracy, escalated_correct)
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
) -> Calibration:
    return Calibration(
        threshold=float(np.nextafter(ranked[0], np.inf)),
        target_accuracy=target,
        kept_share=0.0,
        kept_accuracy=None,
        overall_accuracy=None if escalated_correct is None else float(accuracy[0]),
        n=n,
        achievable=False,
    )
