"""Learned routers: embed the conversation, predict each model's quality, pick the best value.

The choice is argmax over models of predicted quality - threshold x relative cost, so one
router file serves any number of models. Train with `train_router` (or
`smallfirst router train`); serve through `model: "auto"` or `model: "router-knn-0.3"`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from smallfirst.routing import predictors
from smallfirst.routing.base import RouteDecision
from smallfirst.routing.features import embed_conversations, router_embedder, user_turns
from smallfirst.routing.metrics import choose
from smallfirst.routing.outcomes import Outcomes, OutcomesError
from smallfirst.routing.router_file import RouterModel
from smallfirst.routing.templates import Template, learn_template
from smallfirst.types import Message


def score_range(scores: np.ndarray) -> tuple[float, float]:
    """Right/wrong data is already 0..1; other scales map by their observed min and max."""
    lo, hi = float(scores.min()), float(scores.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def model_costs(outcomes: Outcomes) -> tuple[list[float], bool]:
    """Prices from the outcomes, else an assumed order: the better a model scores, the dearer.

    Returns (costs, assumed).
    """
    if outcomes.costs and all(m in outcomes.costs for m in outcomes.models):
        return [float(outcomes.costs[m]) for m in outcomes.models], False
    ranks = np.argsort(np.argsort(outcomes.scores.mean(axis=0), kind="stable"), kind="stable")
    return [float(r) for r in ranks], True


def prompt_template(conversations: list[list[str]]) -> Template:
    """The fixed template(s) of these prompts' last turns (see templates.py)."""
    return learn_template(c[-1] for c in conversations)


def train_router(
    outcomes: Outcomes,
    kind: str = "knn",
    embedder: str = "static",
    vectors: np.ndarray | None = None,
    template: Template | None = None,
    **options: Any,
) -> RouterModel:
    """Fit a predictor on the outcomes; `vectors` skips embedding when already computed (with
    `template`, which is otherwise learned from the outcomes' prompts)."""
    if len(outcomes) < 2:
        raise OutcomesError(f"{outcomes.source}: need at least 2 rows to train a router")
    if len(outcomes.models) < 2:
        raise OutcomesError(f"{outcomes.source}: need scores for at least 2 models to route")
    if template is None:
        template = prompt_template(outcomes.turns)
    if vectors is None:
        vectors = embed_conversations(router_embedder(embedder), outcomes.turns, template)
    lo, hi = score_range(outcomes.scores)
    quality = (outcomes.scores - lo) / (hi - lo)
    arrays, params = predictors.fit(kind, vectors, quality, **options)
    params["template"] = template.to_json()
    costs, assumed = model_costs(outcomes)
    return RouterModel(
        kind=kind,
        embedder=embedder,
        models=list(outcomes.models),
        costs=costs,
        score_range=(lo, hi),
        arrays=arrays,
        params=params,
        trained_on={
            "source": outcomes.source,
            "rows": len(outcomes),
            "costs_assumed": assumed,
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def predict_quality(router: RouterModel, vectors: np.ndarray) -> np.ndarray:
    return predictors.predict(router.kind, router.arrays, router.params, vectors)


def router_template(router: RouterModel) -> Template:
    return Template.from_json(router.params.get("template"))


def predict_conversations(router: RouterModel, conversations: list[list[str]]) -> np.ndarray:
    embedder = router_embedder(router.embedder)
    vectors = embed_conversations(embedder, conversations, router_template(router))
    return predict_quality(router, vectors)


def strong_gain(router: RouterModel, pred: np.ndarray) -> np.ndarray:
    """Two models: predicted quality of the dearer minus the cheaper (the routing score)."""
    order = np.argsort(router.costs, kind="stable")
    return pred[:, order[-1]] - pred[:, order[0]]


@dataclass(slots=True)
class Choice:
    index: int
    score: float
    reason: str


def explain_choice(router: RouterModel, pred: np.ndarray, threshold: float) -> Choice:
    """Pick a model for one prompt's predictions and say why in a sentence."""
    costs = router.norm_costs()
    picked = int(choose(pred[None, :], costs, threshold)[0])
    name = router.models[picked]
    if len(router.models) == 2:
        gain = float(strong_gain(router, pred[None, :])[0])
        dear = router.models[int(np.argmax(router.costs))]
        sign = ">" if name == dear else "<="
        return Choice(
            picked,
            gain,
            f"{router.kind}: predicted gain of {dear} {gain:+.2f} {sign} threshold "
            f"{threshold:.2f} -> {name}",
        )
    best = int(np.argmax(pred))
    reason = (
        f"{router.kind}: {name} has the best predicted quality - {threshold:.2f} x cost "
        f"(quality {pred[picked]:.2f}, relative cost {costs[picked]:.2f})"
    )
    if best != picked:
        reason += f"; best predicted {router.models[best]} {pred[best]:.2f} is not worth its cost"
    return Choice(picked, float(pred[picked]), reason)


class LearnedRouter:
    """A Router over a trained router file, with outcome names mapped to configured models."""

    def __init__(
        self,
        name: str,
        router: RouterModel,
        model_map: dict[str, str],
        threshold: float | None = None,
    ) -> None:
        self.name = name
        self.router = router
        self.model_map = model_map
        self.threshold = router.threshold if threshold is None else threshold
        self._embedder = router_embedder(router.embedder)
        self._template = router_template(router)

    def decide(self, messages: list[Message]) -> RouteDecision:
        vector = embed_conversations(self._embedder, [user_turns(messages)], self._template)
        pred = predict_quality(self.router, vector)[0]
        choice = explain_choice(self.router, pred, self.threshold)
        outcome_name = self.router.models[choice.index]
        return RouteDecision(
            model=self.model_map.get(outcome_name, outcome_name),
            router=self.name,
            reason=choice.reason,
            score=choice.score,
            details={
                "predicted": {
                    self.model_map.get(m, m): round(float(q), 4)
                    for m, q in zip(self.router.models, pred, strict=True)
                },
                "threshold": self.threshold,
            },
        )
