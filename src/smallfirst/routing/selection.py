"""Pick a router kind and its hyperparameters on inner folds of the training data only.

Choosing the best of several routers on the test folds flatters the winner; here every
candidate is cross-validated inside the training set and the best there (APGR for two models,
AIQ for more) is refitted on all of it. The test set is never looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smallfirst.routing import metrics
from smallfirst.routing.evaluation import cross_validate, quality
from smallfirst.routing.learned import model_costs
from smallfirst.routing.outcomes import Outcomes

CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("knn", {"k": 10}),
    ("knn", {"k": 40}),
    ("knn", {"k": 160}),
    ("linear", {"c": 0.1}),
    ("linear", {"c": 1.0}),
)


@dataclass(slots=True)
class Selection:
    kind: str
    options: dict[str, Any]
    score: float
    """Inner cross-validated APGR (two models) or AIQ of the winner."""
    tried: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return describe(self.kind, self.options)


def describe(kind: str, options: dict[str, Any]) -> str:
    return kind + "".join(f" {k}={v}" for k, v in options.items())


def inner_score(outcomes: Outcomes, pred: np.ndarray) -> float:
    """APGR of the out-of-fold predictions (two models) or AIQ (N models)."""
    costs = np.asarray(model_costs(outcomes)[0], dtype=np.float64)
    truth = quality(outcomes)
    if len(outcomes.models) == 2:
        weak, strong = int(np.argmin(costs)), int(np.argmax(costs))
        gain = pred[:, strong] - pred[:, weak]
        return metrics.two_model_report(gain, truth[:, weak], truth[:, strong]).apgr
    points = metrics.cost_quality_points(pred, truth, costs, metrics.lambda_grid(pred, costs))
    return metrics.aiq(points, float(costs.min()), float(costs.max()))


def select_router(
    outcomes: Outcomes,
    vectors: np.ndarray,
    candidates: tuple[tuple[str, dict[str, Any]], ...] = CANDIDATES,
    folds: int = 3,
    seed: int = 0,
    embedder: str = "static",
) -> Selection:
    """The candidate with the best inner cross-validated score on `outcomes`."""
    tried = []
    for kind, options in candidates:
        pred, _ = cross_validate(outcomes, vectors, kind, embedder, folds, seed, **options)
        tried.append((kind, dict(options), inner_score(outcomes, pred)))
    kind, options, score = max(tried, key=lambda t: t[2])
    return Selection(kind, options, score, tried)
