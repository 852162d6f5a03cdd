"""How good is a router: RouteLLM's PGR / APGR / CPT for two models, RouterBench's AIQ for N.

Two models (weak, strong): a router ranks prompts by how much it wants the strong model and
sends the top share to it. At a strong-call share s,

    PGR(s) = (q_router(s) - q_weak) / (q_strong - q_weak)

where q is the mean score over all prompts. APGR is the area under PGR over s in [0, 1];
CPT(x) is the smallest share of strong calls at which PGR reaches x. Prompts with equal router
scores are indivisible for a threshold, so within a tie the curve is the straight line a
random tie-break gives on average; a constant-score (random) router therefore has APGR 0.5.

N models: each willingness-to-pay setting gives one (mean cost, mean quality) point; AIQ is the
area under the non-decreasing upper convex hull of those points between the cheapest and the
priciest single model's cost, divided by that cost range (so it is in quality units).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class PGRCurve:
    share: np.ndarray
    """Share of prompts sent to the strong model, 0..1, increasing."""
    pgr: np.ndarray
    """Performance gap recovered at that share."""
    quality: np.ndarray
    """Mean score over all prompts at that share."""


def pgr_curve(router_scores: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray) -> PGRCurve:
    """The PGR curve when prompts go to the strong model in decreasing router-score order."""
    router_scores = np.asarray(router_scores, dtype=np.float64)
    q_weak = np.asarray(q_weak, dtype=np.float64)
    q_strong = np.asarray(q_strong, dtype=np.float64)
    n = len(router_scores)
    if n == 0 or not (len(q_weak) == len(q_strong) == n):
        raise ValueError("pgr_curve needs equally long, non-empty score arrays")
    order = np.argsort(-router_scores, kind="stable")
    gains = (q_strong - q_weak)[order]
    sorted_scores = router_scores[order]
    # Only the ends of tie groups are reachable by a threshold.
    ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True]) + 1
    counts = np.r_[0, ends]
    cumulative_gain = np.r_[0.0, np.cumsum(gains)[ends - 1]]
    base = q_weak.sum()
    quality = (base + cumulative_gain) / n
    gap = q_strong.mean() - q_weak.mean()
    pgr = (quality - q_weak.mean()) / gap if gap != 0 else np.zeros_like(quality)
    return PGRCurve(share=counts / n, pgr=pgr, quality=quality)


def apgr(curve: PGRCurve) -> float:
    """Area under PGR vs share of strong calls (trapezoids between reachable points)."""
    return float(np.trapezoid(curve.pgr, curve.share))


def cpt(curve: PGRCurve, target: float) -> float | None:
    """Smallest strong-call share at which PGR reaches `target` (e.g. 0.5), or None if never."""
    reached = np.flatnonzero(curve.pgr >= target - 1e-12)
    if len(reached) == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return float(curve.share[0])
    s0, s1 = curve.share[i - 1], curve.share[i]
    p0, p1 = curve.pgr[i - 1], curve.pgr[i]
    return float(s0 + (target - p0) / (p1 - p0) * (s1 - s0))


@dataclass(slots=True)
class TwoModelReport:
    apgr: float
    cpt50: float | None
    cpt80: float | None
    curve: PGRCurve


def two_model_report(
    router_scores: np.ndarray, q_weak: np.ndarray, q_strong: np.ndarray
) -> TwoModelReport:
    curve = pgr_curve(router_scores, q_weak, q_strong)
    return TwoModelReport(apgr(curve), cpt(curve, 0.5), cpt(curve, 0.8), curve)


def oracle_scores(q_weak: np.ndarray, q_strong: np.ndarray) -> np.ndarray:
    """The router that knows the outcomes: strong first where it gains most."""
    return np.asarray(q_strong, dtype=np.float64) - np.asarray(q_weak, dtype=np.float64)


def random_scores(n: int) -> np.ndarray:
    """A router with no information: every prompt tied, i.e. the expected random order."""
    return np.zeros(n)


# ---- N models: cost-quality curve and AIQ -------------------------------------------------


def choose(pred: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    """Per prompt, the model maximising predicted quality - lam * cost (ties: cheaper)."""
    value = pred - lam * costs[None, :]
    order = np.argsort(costs, kind="stable")
    return order[np.argmax(value[:, order], axis=1)]


def lambda_grid(pred: np.ndarray, costs: np.ndarray, size: int = 200) -> np.ndarray:
    """Willingness-to-pay settings spanning 'always cheapest' to 'always best predicted'."""
    span = float(np.ptp(costs)) or 1.0
    top = float(np.ptp(pred)) / span * 2 + 1e-9 if pred.size else 1.0
    return np.r_[0.0, np.geomspace(top * 1e-4, top, size - 2), top * 10]


def cost_quality_points(
    pred: np.ndarray, truth: np.ndarray, costs: np.ndarray, lambdas: np.ndarray
) -> np.ndarray:
    """(mean cost, mean true quality) of the routing chosen at each lambda; shape (L, 2)."""
    rows = np.arange(len(truth))
    points = []
    for lam in lambdas:
        picked = choose(pred, costs, float(lam))
        points.append((costs[picked].mean(), truth[rows, picked].mean()))
    return np.array(points)


def upper_hull(points: np.ndarray) -> np.ndarray:
    """Upper convex hull of (cost, quality) points, left to right."""
    pts = sorted({(float(c), float(q)) for c, q in points})
    hull: list[tuple[float, float]] = []
    for p in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return np.array(hull)


def aiq(points: np.ndarray, c_min: float, c_max: float, grid: int = 2001) -> float:
    """Average quality of the non-decreasing convex hull over [c_min, c_max] (RouterBench AIQ).

    Beyond its last point the curve stays flat (spending more never has to lower quality);
    the lambda grid always includes "always the cheapest model", so the left end is reached.
    """
    hull = upper_hull(points)
    xs = np.linspace(c_min, c_max, grid)
    ys = np.interp(xs, hull[:, 0], hull[:, 1], left=hull[0, 1], right=hull[-1, 1])
    ys = np.maximum.accumulate(ys)
    if c_max <= c_min:
        return float(ys[-1])
    return float(np.trapezoid(ys, xs) / (c_max - c_min))


def single_model_points(truth: np.ndarray, costs: np.ndarray) -> np.ndarray:
    return np.column_stack([costs, truth.mean(axis=0)])


def oracle_points(truth: np.ndarray, costs: np.ndarray) -> np.ndarray:
    return cost_quality_points(truth, truth, costs, lambda_grid(truth, costs))
