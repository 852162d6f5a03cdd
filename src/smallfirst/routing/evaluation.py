"""Measure a router against random, the best single model and the oracle, and plot it.

Two models get RouteLLM's APGR / CPT(50%) / CPT(80%); any number of models get RouterBench's
AIQ. Held-out numbers come from k-fold cross-validation (`cross_validate`, in domain) or from a
router trained on one outcome set and applied to another (`train_and_test`, out of domain).
With `intervals`, every figure gets a bootstrap interval (see intervals.py) and two-model
reports add RouteLLM's cost saving vs random at CPT(50%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smallfirst.evaluate.stats import Estimate
from smallfirst.routing import intervals as ci
from smallfirst.routing import metrics
from smallfirst.routing.features import embed_conversations, router_embedder
from smallfirst.routing.learned import (
    model_costs,
    predict_quality,
    prompt_template,
    score_range,
    train_router,
)
from smallfirst.routing.outcomes import Outcomes, OutcomesError
from smallfirst.routing.templates import Template


def cross_validate(
    outcomes: Outcomes,
    vectors: np.ndarray,
    kind: str = "knn",
    embedder: str = "static",
    folds: int = 5,
    seed: int = 0,
    **options,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Out-of-fold predicted quality (n, models) and the held-out index of each fold.

    Items sharing a group (the turns of one question) stay in the same fold.
    """
    from sklearn.model_selection import GroupKFold, KFold

    n = len(outcomes)
    folds = max(2, min(folds, n))
    if outcomes.groups is not None and len(set(outcomes.groups)) >= folds:
        splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = splitter.split(vectors, groups=outcomes.groups)
    else:
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(vectors)
    pred = np.zeros(outcomes.scores.shape)
    held: list[np.ndarray] = []
    for train_idx, test_idx in splits:
        router = train_router(
            outcomes.subset(train_idx), kind, embedder, vectors[train_idx], Template(), **options
        )
        pred[test_idx] = predict_quality(router, vectors[test_idx])
        held.append(test_idx)
    return pred, held


@dataclass(slots=True)
class EvalReport:
    models: list[str]
    costs: list[float]
    rows: list[tuple[str, dict[str, float | None]]] = field(default_factory=list)
    """(router name, metric -> value) in display order."""
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    """Router name -> (x, y) points: (strong share, PGR) or (cost, quality)."""
    two_model: bool = True
    intervals: dict[str, dict[str, Estimate | None]] = field(default_factory=dict)
    """Router name -> metric -> bootstrap interval, when asked for."""


def train_and_test(
    train: Outcomes, test: Outcomes, kind: str, embedder: str, **options
) -> tuple[np.ndarray, Template]:
    """Out of domain: a router trained on all of `train` (its template learned from `train`'s
    prompts, as `router train` does) predicts `test`. Same models, in the same order."""
    if sorted(train.models) != sorted(test.models):
        raise OutcomesError(
            f"{test.source}: models {test.models} differ from the training set's {train.models};"
            " pick common ones with --models"
        )
    test = test.select_models(train.models)
    template = prompt_template(train.turns)
    model = router_embedder(embedder)
    train_vectors = embed_conversations(model, train.turns, template)
    router = train_router(train, kind, embedder, train_vectors, template, **options)
    pred = predict_quality(router, embed_conversations(model, test.turns, template))
    return pred, template


def evaluate(
    outcomes: Outcomes,
    pred: np.ndarray,
    label: str = "router",
    intervals: bool = False,
    resamples: int = ci.RESAMPLES,
) -> EvalReport:
    """Metrics for predicted quality `pred` on `outcomes`, beside the baselines."""
    costs, _ = model_costs(outcomes)
    if len(outcomes.models) == 2:
        return _two_model(outcomes, pred, costs, label, intervals, resamples)
    return _n_model(outcomes, pred, costs, label, intervals, resamples)


def _two_model(
    outcomes: Outcomes,
    pred: np.ndarray,
    costs: list[float],
    label: str,
    intervals: bool,
    resamples: int,
) -> EvalReport:
    weak, strong = int(np.argmin(costs)), int(np.argmax(costs))
    q_weak, q_strong = outcomes.scores[:, weak], outcomes.scores[:, strong]
    scores = {
        label: pred[:, strong] - pred[:, weak],
        "random": metrics.random_scores(len(outcomes)),
        "oracle": metrics.oracle_scores(q_weak, q_strong),
    }
    report = EvalReport(outcomes.models, costs)
    for name, s in scores.items():
        r = metrics.two_model_report(s, q_weak, q_strong)
        report.rows.append((name, ci.two_model_figures(s, q_weak, q_strong)))
        report.curves[name] = np.column_stack([r.curve.share, r.curve.pgr])
        if intervals and name == label:
            report.intervals[name] = ci.bootstrap_two_model(s, q_weak, q_strong, resamples)
    for name, col in (("weak only", weak), ("strong only", strong)):
        share = 0.0 if col == weak else 1.0
        report.rows.append(
            (
                f"{name}: {outcomes.models[col]}",
                {"share": share, "quality": float(outcomes.scores[:, col].mean())},
            )
        )
    return report


def _n_model(
    outcomes: Outcomes,
    pred: np.ndarray,
    costs: list[float],
    label: str,
    intervals: bool,
    resamples: int,
) -> EvalReport:
    truth = quality(outcomes)
    c = np.asarray(costs, dtype=np.float64)
    c_min, c_max = float(c.min()), float(c.max())
    singles = metrics.single_model_points(truth, c)
    curves = {
        label: metrics.cost_quality_points(pred, truth, c, metrics.lambda_grid(pred, c)),
        "random mix (single-model hull)": singles,
        "oracle": metrics.oracle_points(truth, c),
    }
    report = EvalReport(outcomes.models, costs, two_model=False)
    for name, pts in curves.items():
        report.rows.append((name, {"AIQ": metrics.aiq(pts, c_min, c_max)}))
        report.curves[name] = pts
    if intervals:
        aiq = ci.bootstrap_aiq(pred, truth, c, max(resamples // 5, 50))
        report.intervals[label] = {"AIQ": aiq}
    best = int(np.argmax(singles[:, 1]))
    at_best_cost = curves[label][curves[label][:, 0] <= c[best] + 1e-12]
    report.rows.append(
        (
            f"best single: {outcomes.models[best]}",
            {
                "quality": float(singles[best, 1]),
                "cost": float(c[best]),
                "router quality at its cost": float(at_best_cost[:, 1].max())
                if len(at_best_cost)
                else None,
            },
        )
    )
    return report


def quality(outcomes: Outcomes) -> np.ndarray:
    lo, hi = score_range(outcomes.scores)
    return (outcomes.scores - lo) / (hi - lo)


def format_report(report: EvalReport) -> str:
    """A plain-text table, one router per line."""
    lines = []
    for name, values in report.rows:
        bounds = report.intervals.get(name, {})
        cells = "  ".join(f"{k} {_fmt(k, v)}{_span(k, bounds.get(k))}" for k, v in values.items())
        lines.append(f"{name:<40} {cells}")
    return "\n".join(lines)


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if key.startswith("CPT") or key == "share":
        return f"{value * 100:.1f}%"
    if key.startswith("saving"):
        return f"{value:.2f}x"
    return f"{value:.3f}"


def _span(key: str, estimate: Estimate | None) -> str:
    if estimate is None:
        return ""
    return f" [{_fmt(key, estimate.low)}, {_fmt(key, estimate.high)}]"


def plot(report: EvalReport, path: str | Path, title: str = "") -> Path:
    """PNG of PGR vs strong-call share (two models) or quality vs cost (N models)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, pts in report.curves.items():
        if report.two_model:
            ax.plot(pts[:, 0] * 100, pts[:, 1], label=name)
        else:
            hull = metrics.upper_hull(pts)
            ax.plot(hull[:, 0], hull[:, 1], label=name)
            ax.scatter(pts[:, 0], pts[:, 1], s=6)
    if report.two_model:
        ax.set_xlabel("% calls to strong model")
        ax.set_ylabel("PGR (performance gap recovered)")
    else:
        ax.set_xlabel("mean cost per request (price units)")
        ax.set_ylabel("mean quality (0-1)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
