"""Router figures with bootstrap intervals: APGR, CPT(50%), CPT(80%), saving vs random, AIQ.

RouteLLM's "cost saving" of a router is relative to a random router at the same quality:
random needs 50% strong calls for PGR 0.5, the router CPT(50%), so the saving is 50% / CPT(50%).
Intervals resample prompts with replacement (the router's scores stay fixed, as they were
produced without the test labels); the same resamples serve every router, so two routers'
difference has a paired interval.
"""

from __future__ import annotations

import numpy as np

from smallfirst.evaluate.stats import DEFAULT_LEVEL, Estimate, resample_indices
from smallfirst.routing import metrics

TWO_MODEL_KEYS = ("APGR", "CPT(50%)", "CPT(80%)", "saving vs random")
RESAMPLES = 1000


def saving_vs_random(cpt50: float | None) -> float | None:
    """RouteLLM's cost saving relative to random at CPT(50%): 0.5 / CPT(50%)."""
    return 0.5 / cpt50 if cpt50 else None


def two_model_figures(
    scores: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray
) -> dict[str, float | None]:
    report = metrics.two_model_report(scores, q_weak, q_strong)
    return {
        "APGR": report.apgr,
        "CPT(50%)": report.cpt50,
        "CPT(80%)": report.cpt80,
        "saving vs random": saving_vs_random(report.cpt50),
    }


def _interval(point: float | None, values: list[float | None], level: float) -> Estimate | None:
    """None when the figure itself is undefined (e.g. CPT never reached)."""
    return None if point is None else _percentiles(point, values, level)


def _percentiles(point: float, values: list[float | None], level: float) -> Estimate:
    kept = np.array([v for v in values if v is not None], dtype=np.float64)
    if len(kept) == 0:
        return Estimate(point, point, point)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return Estimate(float(point), float(low), float(high))


def bootstrap_two_model(
    scores: np.ndarray,
    q_weak: np.ndarray,
    q_strong: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Estimate | None]:
    """Each two-model figure with a percentile interval over prompt resamples."""
    scores, q_weak, q_strong = (np.asarray(a, dtype=np.float64) for a in (scores, q_weak, q_strong))
    point = two_model_figures(scores, q_weak, q_strong)
    draws: dict[str, list[float | None]] = {k: [] for k in TWO_MODEL_KEYS}
    for rows in resample_indices(len(scores), resamples, seed):
        if q_strong[rows].mean() == q_weak[rows].mean():
            continue
        for key, value in two_model_figures(scores[rows], q_weak[rows], q_strong[rows]).items():
            draws[key].append(value)
    return {k: _interval(point[k], draws[k], level) for k in TWO_MODEL_KEYS}


def apgr_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    q_weak: np.ndarray,
    q_strong: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """APGR(a) - APGR(b) on the same prompts, with a paired bootstrap interval."""

    def diff(rows: np.ndarray) -> float:
        a = metrics.two_model_report(scores_a[rows], q_weak[rows], q_strong[rows]).apgr
        return a - metrics.two_model_report(scores_b[rows], q_weak[rows], q_strong[rows]).apgr

    everything = np.arange(len(q_weak))
    draws: list[float | None] = [diff(r) for r in resample_indices(len(q_weak), resamples, seed)]
    return _percentiles(diff(everything), draws, level)


def bootstrap_aiq(
    pred: np.ndarray,
    truth: np.ndarray,
    costs: np.ndarray,
    resamples: int = 200,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """AIQ of the routing `pred` gives, with a percentile interval over prompt resamples."""
    costs = np.asarray(costs, dtype=np.float64)
    lambdas = metrics.lambda_grid(pred, costs)
    c_min, c_max = float(costs.min()), float(costs.max())

    def aiq(rows: np.ndarray) -> float:
        points = metrics.cost_quality_points(pred[rows], truth[rows], costs, lambdas)
        return metrics.aiq(points, c_min, c_max)

    draws: list[float | None] = [aiq(r) for r in resample_indices(len(truth), resamples, seed)]
    return _percentiles(aiq(np.arange(len(truth))), draws, level)


def single_hull_aiq(truth: np.ndarray, costs: np.ndarray) -> float:
    """AIQ of mixing single models at random (their hull): the N-model 'random' baseline."""
    costs = np.asarray(costs, dtype=np.float64)
    points = metrics.single_model_points(truth, costs)
    return metrics.aiq(points, float(costs.min()), float(costs.max()))
