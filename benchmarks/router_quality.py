"""In-domain router quality on the shared RouteLLM and LLMRouter sets (5-fold cross-validation).

    nice python benchmarks/router_quality.py [--kinds knn linear mlp] [--embedders static minilm]
                                             [--rating-sample 200] [--plots DIR] [--no-template]

RouteLLM's protocol on its sets: contaminated prompts removed (an MT-Bench question goes when
either turn is listed), MT-Bench one item per question routed on turn 1 and scored over both
turns. Embeddings are cached as .npy under the state dir; each set's template is learned from
its prompts (no scores). Each router is trained on 4/5 and scored on the held-out fifth;
metrics on the pooled held-out predictions, every figure with a 95% bootstrap interval. Two-model
sets print APGR, CPT(50%), CPT(80%) and RouteLLM's cost saving vs random (50% / CPT(50%)) beside
random, oracle and RouteLLM's published figures; the 9-model LLMRouter set prints AIQ beside
the single-model hull and the best single model. All routers are shown; none is picked on the
test folds (benchmarks/router_ood.py picks on inner folds of training data, out of domain).
`--rating-sample N` also scores the naive baseline (the embedded model rates difficulty).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from smallfirst.config import state_dir
from smallfirst.evaluate.stats import Estimate
from smallfirst.routing import intervals as ci
from smallfirst.routing import metrics
from smallfirst.routing.evaluation import cross_validate, evaluate, plot
from smallfirst.routing.features import embed_cached
from smallfirst.routing.learned import prompt_template
from smallfirst.routing.outcomes import Outcomes, first_turn_per_question, load_outcomes
from smallfirst.routing.templates import Template

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
    # RouteLLM (Ong et al., 2024), best router per set, out of domain (trained on Chatbot Arena
    # preference data). Their cost saving is relative to a random router: 50% / CPT(50%).
    "MT-Bench": {"APGR": 0.802, "CPT(50%)": 0.134, "saving vs random": 3.66},
    "GSM8K": {"saving vs random": 1.41},
    "MMLU": {"saving vs random": 1.49},
}
Figure = float | Estimate | None


def two_model_row(outcomes: Outcomes, scores: np.ndarray, resamples: int) -> dict[str, Figure]:
    weak, strong = outcomes.scores[:, 0], outcomes.scores[:, 1]
    if resamples <= 0:
        return dict(ci.two_model_figures(scores, weak, strong))
    return dict(ci.bootstrap_two_model(scores, weak, strong, resamples))


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


def fmt(value: Figure, key: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, Estimate):
        return f"{fmt(value.value, key)} [{fmt(value.low, key)}, {fmt(value.high, key)}]"
    if key.startswith("CPT"):
        return f"{value * 100:.1f}%"
    if key.startswith("saving"):
        return f"{value:.2f}x"
    return f"{value:.3f}"


TWO_KEYS = list(ci.TWO_MODEL_KEYS)


def print_two(name: str, rows: list[tuple[str, dict]]) -> None:
    print(f"\n### {name}\n")
    print("| router | " + " | ".join(TWO_KEYS) + " |")
    print("|---" * (len(TWO_KEYS) + 1) + "|")
    for label, row in rows:
        print(f"| {label} | " + " | ".join(fmt(row.get(k), k) for k in TWO_KEYS) + " |")


def set_template(outcomes: Outcomes, args) -> Template:
    return Template() if args.no_template else prompt_template(outcomes.turns)


def run_two_model(name: str, outcomes: Outcomes, args, cache: Path) -> None:
    outcomes = order_weak_strong(outcomes)
    n = len(outcomes)
    rows: list[tuple[str, dict]] = []
    template = set_template(outcomes, args)
    for emb in args.embedders:
        vectors = embed_cached(emb, outcomes.turns, cache, template)
        for kind in args.kinds:
            started = time.perf_counter()
            pred, folds = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
            gain = pred[:, 1] - pred[:, 0]
            row = two_model_row(outcomes, gain, args.resamples)
            spread = fold_apgrs(outcomes, gain, folds)
            label = f"{kind}/{emb} (APGR per fold {np.mean(spread):.3f} ± {np.std(spread):.3f})"
            rows.append((label, row))
            print(f"  {name} {kind}/{emb}: {time.perf_counter() - started:.1f}s", flush=True)
            if args.plots and kind == args.kinds[0] and emb == args.embedders[0]:
                plot(evaluate(outcomes, pred, f"{kind}/{emb}"), args.plots / f"{name}.png", name)
    rows.append(("random", two_model_row(outcomes, metrics.random_scores(n), 0)))
    oracle = metrics.oracle_scores(outcomes.scores[:, 0], outcomes.scores[:, 1])
    rows.append(("oracle", two_model_row(outcomes, oracle, 0)))
    if name in PUBLISHED:
        rows.append(("RouteLLM published (best router)", PUBLISHED[name]))
    if args.rating_sample:
        rows.extend(rating_rows(outcomes, args, cache))
    q = outcomes.scores.mean(axis=0)
    unit = "questions, routed on turn 1" if name == "MT-Bench" else "prompts"
    print_two(
        f"{name} ({n} {unit}; weak {outcomes.models[0]} {q[0]:.3f}, "
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
    vectors = embed_cached(emb, outcomes.turns, cache, set_template(outcomes, args))
    pred, _ = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
    gain = (pred[:, 1] - pred[:, 0])[sample]
    return [
        (
            f"rating (gemma-3-270m), {len(sample)}-prompt sample",
            two_model_row(sub, ratings, args.resamples),
        ),
        (f"{kind}/{emb} on the same sample", two_model_row(sub, gain, args.resamples)),
    ]


def run_n_model(name: str, outcomes: Outcomes, args, cache: Path) -> None:
    print(f"\n### {name} ({len(outcomes)} prompts x {len(outcomes.models)} models, $/Mtok)\n")
    print("| router | AIQ | quality at best single model's cost |")
    print("|---|---|---|")
    last = None
    template = set_template(outcomes, args)
    for emb in args.embedders:
        vectors = embed_cached(emb, outcomes.turns, cache, template)
        for kind in args.kinds:
            pred, _ = cross_validate(outcomes, vectors, kind, emb, args.folds, args.seed)
            label = f"{kind}/{emb}"
            report = evaluate(outcomes, pred, label, args.resamples > 0, args.resamples)
            rows = dict(report.rows)
            best = next(v for k, v in report.rows if k.startswith("best single"))
            aiq = report.intervals.get(label, {}).get("AIQ") or rows[label]["AIQ"]
            print(f"| {label} | {fmt(aiq, 'AIQ')} | {best['router quality at its cost']:.3f} |")
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
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--no-template", action="store_true", help="Embed whole prompts.")
    args = parser.parse_args()
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
    cache = state_dir() / "cache" / "router-embeddings"
    for name in args.sets:
        file, contaminated = SETS[name]
        outcomes = load_outcomes(DATA / file, exclude=DATA / contaminated if contaminated else None)
        outcomes = first_turn_per_question(outcomes)
        if len(outcomes.models) == 2:
            run_two_model(name, outcomes, args, cache)
        else:
            run_n_model(name, outcomes, args, cache)


if __name__ == "__main__":
    main()
