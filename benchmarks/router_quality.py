"""Router quality on the shared RouteLLM and LLMRouter outcome sets (5-fold cross-validation).

    nice python benchmarks/router_quality.py [--kinds knn linear mlp] [--embedders static minilm]
                                             [--rating-sample 200] [--plots DIR]

Per set: contaminated prompts removed, embeddings cached as .npy under the state dir, each
router trained on 4/5 and scored on the held-out fifth; metrics on the pooled held-out
predictions (plus the spread of APGR over folds). Two-model sets print APGR, CPT(50%),
CPT(80%) and the share of strong calls needed for 95% of the strong model's quality beside
random, oracle and RouteLLM's published figures; the 9-model LLMRouter set prints AIQ beside
the single-model hull and the best single model. `--rating-sample N` also scores the naive
baseline (the embedded model rates difficulty) on N random prompts per two-model set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from smallfirst.config import state_dir
from smallfirst.routing import metrics
from smallfirst.routing.evaluation import cross_validate, evaluate, plot
from smallfirst.routing.features import embed_cached
from smallfirst.routing.outcomes import Outcomes, load_outcomes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
SETS = {
    "MT-Bench": (
        "routellm/mt_bench__judgements.jsonl",
        "routellm/mt_bench__contaminated_prompts.jsonl",
    ),
    "GSM8K": ("routellm/gsm8k__gsm8k_responses.csv", "routellm/gsm8k__contaminated_prompts.jsonl"),
    "MMLU": ("routellm/mmlu_responses", "routellm/mmlu__contaminated_prompts.jsonl"),
    "LLMRouter-9": ("llmrouter/train.json", None),
}
PUBLISHED = {
    # RouteLLM (Ong et al., 2024), best router per set; the saving is the cost ratio they
    # report at 95% of GPT-4's quality.
    "MT-Bench": {"APGR": 0.802, "CPT(50%)": 0.134, "saving@95%": 3.66},
    "GSM8K": {"saving@95%": 1.49},
    "MMLU": {"saving@95%": 1.41},
}


def share_for_quality(curve: metrics.PGRCurve, q_target: float) -> float | None:
    """Smallest strong-call share whose mean quality reaches q_target (interpolated)."""
    reached = np.flatnonzero(curve.quality >= q_target - 1e-12)
    if len(reached) == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return 0.0
    q0, q1 = curve.quality[i - 1], curve.quality[i]
    s0, s1 = curve.share[i - 1], curve.share[i]
    return float(s0 + (q_target - q0) / (q1 - q0) * (s1 - s0))


def two_model_row(outcomes: Outcomes, scores: np.ndarray) -> dict[str, float | None]:
    weak, strong = outcomes.scores[:, 0], outcomes.scores[:, 1]
    report = metrics.two_model_report(scores, weak, strong)
    share95 = share_for_quality(report.curve, 0.95 * strong.mean())
    return {
        "APGR": report.apgr,
        "CPT(50%)": report.cpt50,
        "CPT(80%)": report.cpt80,
        "strong@95%": share95,
        "saving@95%": (1 / share95) if share95 else None,
    }


def order_weak_strong(outcomes: Outcomes) -> Outcomes:
    """Two-model sets: weak first, strong (higher mean score) second."""
    order = np.argsort(outcomes.scores.mean(axis=0))
    return outcomes.select_models([outcomes.models[i] for i in order])


def fold_apgrs(outcomes: Outcomes, gain: np.ndarray, folds: list[np.ndarray]) -> list[float]:
    out = []
    for held in folds:
        r = metrics.two_model_report(gain[held], outcomes.scores[held, 0], outcomes.scores[held, 1])
        out.append(r.apgr)
    return out


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    if key.startswith(("CPT", "strong@")):
        return f"{value * 100:.1f}%"
    if key.startswith("saving"):
        return f"{value:.2f}x"
    return f"{value:.3f}"


TWO_KEYS = ["APGR", "CPT(50%)", "CPT(80%)", "strong@95%", "saving@95%"]


def print_two(name: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n### {name}\n")
    print("| router | " + " | ".join(TWO_KEYS) + " |")
    print("|---" * (len(TWO_KEYS) + 1) + "|")
    for label, row in rows:
        print(f"| {label} | " + " | ".join(fmt(row.get(k), k) for k in TWO_KEYS) + " |")


def run_two_model(name: str, outcomes: Outcomes, args, cache: Path) -> None:
    outcomes = order_weak_strong(outcomes)
    n = len(outcomes)
    rows: list[tuple[str, dict]] = []
    for emb in args.embedders:
        vectors = embed_cached(emb, outcomes.turns, cache)
        for kind in args.kinds:
            started = time.perf_counter()
            pred, folds = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
            gain = pred[:, 1] - pred[:, 0]
            row = two_model_row(outcomes, gain)
            spread = fold_apgrs(outcomes, gain, folds)
            label = f"{kind}/{emb} (APGR per fold {np.mean(spread):.3f} ± {np.std(spread):.3f})"
            rows.append((label, row))
            print(f"  {name} {kind}/{emb}: {time.perf_counter() - started:.1f}s", flush=True)
            if args.plots and kind == args.kinds[0] and emb == args.embedders[0]:
                plot(evaluate(outcomes, pred, f"{kind}/{emb}"), args.plots / f"{name}.png", name)
    rows.append(("random", two_model_row(outcomes, metrics.random_scores(n))))
    oracle = metrics.oracle_scores(outcomes.scores[:, 0], outcomes.scores[:, 1])
    rows.append(("oracle", two_model_row(outcomes, oracle)))
    if name in PUBLISHED:
        rows.append(("RouteLLM published (best router)", PUBLISHED[name]))
    if args.rating_sample:
        rows.extend(rating_rows(outcomes, args, cache))
    q = outcomes.scores.mean(axis=0)
    print_two(
        f"{name} ({n} prompts; weak {outcomes.models[0]} {q[0]:.3f}, "
        f"strong {outcomes.models[1]} {q[1]:.3f})",
        rows,
    )


def rating_rows(outcomes: Outcomes, args, cache: Path) -> list[tuple[str, dict]]:
    """The naive baseline on a random sample, beside the first learned router on that sample."""
    from smallfirst.config import Config
    from smallfirst.models.registry import Registry
    from smallfirst.routing.rating import build_rating

    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(outcomes), min(args.rating_sample, len(outcomes)), False))
    rater = build_rating("rating", None, Registry(Config())).rater
    started = time.perf_counter()
    ratings = np.array([rater.rate(outcomes.turns[i][-1]) for i in sample])
    print(f"  rating: {len(sample)} prompts in {time.perf_counter() - started:.0f}s", flush=True)
    sub = outcomes.subset(sample)
    emb, kind = args.embedders[0], args.kinds[0]
    vectors = embed_cached(emb, outcomes.turns, cache)
    pred, _ = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
    gain = (pred[:, 1] - pred[:, 0])[sample]
    return [
        (f"rating (gemma-3-270m), {len(sample)}-prompt sample", two_model_row(sub, ratings)),
        (f"{kind}/{emb} on the same sample", two_model_row(sub, gain)),
    ]


def run_n_model(name: str, outcomes: Outcomes, args, cache: Path) -> None:
    print(f"\n### {name} ({len(outcomes)} prompts x {len(outcomes.models)} models, $/Mtok)\n")
    print("| router | AIQ | quality at best single model's cost |")
    print("|---|---|---|")
    last = None
    for emb in args.embedders:
        vectors = embed_cached(emb, outcomes.turns, cache)
        for kind in args.kinds:
            pred, _ = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
            report = evaluate(outcomes, pred, f"{kind}/{emb}")
            rows = dict(report.rows)
            best = next(v for k, v in report.rows if k.startswith("best single"))
            print(
                f"| {kind}/{emb} | {rows[f'{kind}/{emb}']['AIQ']:.3f} | "
                f"{best['router quality at its cost']:.3f} |"
            )
            last = report
            if args.plots and kind == args.kinds[0] and emb == args.embedders[0]:
                plot(report, args.plots / f"{name}.png", name)
    for label, values in last.rows:
        if "AIQ" in values and "/" not in label:
            print(f"| {label} | {values['AIQ']:.3f} | |")
    best_label, best = next((k, v) for k, v in last.rows if k.startswith("best single"))
    print(f"| {best_label} (cost {best['cost']:.2f}) | | {best['quality']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["knn", "linear", "mlp"])
    parser.add_argument("--embedders", nargs="+", default=["static", "minilm"])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rating-sample", type=int, default=0)
    parser.add_argument("--plots", type=Path, default=None)
    args = parser.parse_args()
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
    cache = state_dir() / "cache" / "router-embeddings"
    for name in args.sets:
        file, contaminated = SETS[name]
        outcomes = load_outcomes(DATA / file, exclude=DATA / contaminated if contaminated else None)
        if len(outcomes.models) == 2:
            run_two_model(name, outcomes, args, cache)
        else:
            run_n_model(name, outcomes, args, cache)


if __name__ == "__main__":
    main()
