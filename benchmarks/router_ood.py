"""Out-of-domain router quality: train on one outcome set, test on another (issue 22).

    SMALLFIRST_HOME=.smallfirst nice -n 10 python benchmarks/router_ood.py \\
        [--sets MT-Bench GSM8K MMLU LLMRouter-9] [--embedder static] [--resamples 1000]

RouteLLM sets (Mixtral-8x7B vs GPT-4, RouteLLM's protocol: contaminated prompts dropped,
MT-Bench one item per question routed on turn 1): every ordered pair (train A, test B), A != B.
LLMRouter (9 models): each task left out in turn, trained on the others. Tasks are told apart
by the prompt's visible format (logic-grid puzzles, code, other questions); the file's
`cluster_id` mixes them. Per pair, on the test set only:
- `kNN baseline`: k=40 on the prompt embedding, no choices made;
- `selected`: kind and hyperparameters picked by APGR / AIQ on inner folds of the training
  set (MMLU's folds keep subjects apart), refitted on all of it;
- `selected + prompt features`: the same, with length / code / maths / constraint features;
- `ensemble`: the mean of kNN and linear (C=1) predictions.
With `--small-signals N`, the RouteLLM pairs run instead on seeded subsamples of at most N
prompts per set, adding the embedded Gemma's first-token confidence on each prompt
(`routing/small_model_signals.py`) as features beside the embedding, alone and with the prompt
features; each prompt's signals are kept in the state directory, so a rerun asks nothing again.
Every figure has a 95% bootstrap interval over test prompts; ΔAPGR vs kNN is paired. The
template of each set is learned from the training prompts, as `router train` does.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np

from smallfirst.config import state_dir
from smallfirst.routing import intervals as ci
from smallfirst.routing.evaluation import quality
from smallfirst.routing.features import embed_cached
from smallfirst.routing.learned import model_costs, predict_quality, prompt_template, train_router
from smallfirst.routing.outcomes import Outcomes, first_turn_per_question, load_outcomes
from smallfirst.routing.prompt_features import feature_scaler, prompt_features, with_features
from smallfirst.routing.selection import select_router
from smallfirst.routing.small_model_signals import first_token_signals
from smallfirst.routing.templates import Template

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing"
ROUTELLM = {
    "MT-Bench": ("mt_bench__judgements.jsonl", "mt_bench__contaminated_prompts.jsonl"),
    "GSM8K": ("gsm8k__gsm8k_responses.csv", "gsm8k__contaminated_prompts.jsonl"),
    "MMLU": ("mmlu_responses", "mmlu__contaminated_prompts.jsonl"),
}
_PUZZLE = re.compile(r"There are \d+ houses")
_CODE = re.compile(r"\bdef |from typing|```|\bpython\b|\bfunction\b", re.I)


def load_routellm(name: str, root: Path = DATA) -> Outcomes:
    file, contaminated = ROUTELLM[name]
    base = root / "routellm"
    return first_turn_per_question(load_outcomes(base / file, exclude=base / contaminated))


def llmrouter_task(prompt: str) -> str:
    """The task a prompt comes from, by its visible format."""
    if _PUZZLE.search(prompt[:300]):
        return "logic puzzles"
    if _CODE.search(prompt):
        return "code"
    return "other questions"


def routers(
    train: Outcomes, test: Outcomes, embed, seed: int, signals=None
) -> dict[str, tuple[np.ndarray, str]]:
    """Test-set predicted quality of each router variant, and what was picked. `signals`: a
    function giving the small model's features of an outcome set's prompts (adds the rows
    that use them)."""
    template = prompt_template(train.turns)
    x_train, x_test = embed(train, template), embed(test, template)
    out = {}
    knn = train_router(train, "knn", vectors=x_train, template=template, k=40)
    out["kNN baseline (k=40)"] = (predict_quality(knn, x_test), "")
    linear = train_router(train, "linear", vectors=x_train, template=template, c=1.0)
    out["ensemble kNN + linear"] = (
        (out["kNN baseline (k=40)"][0] + predict_quality(linear, x_test)) / 2,
        "",
    )
    p_train = prompt_features([t[-1] for t in train.turns])
    p_test = prompt_features([t[-1] for t in test.turns])
    scaler = feature_scaler(p_train)
    f_train, f_test = with_features(x_train, p_train, scaler), with_features(x_test, p_test, scaler)
    variants = {
        "selected on train folds": (x_train, x_test),
        "selected + prompt features": (f_train, f_test),
    }
    if signals is not None:
        g_train, g_test = signals(train), signals(test)
        g_scaler = feature_scaler(g_train)
        s_train, s_test = (
            with_features(x_train, g_train, g_scaler),
            with_features(x_test, g_test, g_scaler),
        )
        knn_signals = train_router(train, "knn", vectors=s_train, template=template, k=40)
        out["kNN + small-model signals (k=40)"] = (predict_quality(knn_signals, s_test), "")
        both, both_test = np.hstack([p_train, g_train]), np.hstack([p_test, g_test])
        b_scaler = feature_scaler(both)
        variants["selected + small-model signals"] = (s_train, s_test)
        variants["selected + prompt features + small-model signals"] = (
            with_features(x_train, both, b_scaler),
            with_features(x_test, both_test, b_scaler),
        )
    for label, (xa, xb) in variants.items():
        chosen = select_router(train, xa, seed=seed)
        model = train_router(train, chosen.kind, vectors=xa, template=template, **chosen.options)
        out[label] = (predict_quality(model, xb), chosen.label)
    return out


def fmt(e, key: str) -> str:
    if e is None:
        return "n/a"
    if key.startswith("CPT"):
        return f"{e.value * 100:.1f}% [{e.low * 100:.0f}, {e.high * 100:.0f}]"
    if key.startswith("saving"):
        return f"{e.value:.2f}x [{e.low:.2f}, {e.high:.2f}]"
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def two_model_pair(
    name: str, train: Outcomes, test: Outcomes, embed, args, signals=None
) -> list[str]:
    test = test.select_models(train.models)
    costs = model_costs(train)[0]
    weak, strong = int(np.argmin(costs)), int(np.argmax(costs))
    q_weak, q_strong = test.scores[:, weak], test.scores[:, strong]
    lines = [
        f"\n#### {name} ({len(train)} train, {len(test)} test prompts)\n",
        "| router (picked) | APGR | CPT(50%) | CPT(80%) | saving vs random | ΔAPGR vs kNN |",
        "|---|---|---|---|---|---|",
    ]
    found = routers(train, test, embed, args.seed, signals)
    baseline = found["kNN baseline (k=40)"][0]
    base_gain = baseline[:, strong] - baseline[:, weak]
    for label, (pred, picked) in found.items():
        gain = pred[:, strong] - pred[:, weak]
        figures = ci.bootstrap_two_model(gain, q_weak, q_strong, args.resamples, args.seed)
        delta = (
            fmt(ci.apgr_difference(gain, base_gain, q_weak, q_strong, args.resamples), "APGR")
            if label != "kNN baseline (k=40)"
            else ""
        )
        cells = " | ".join(fmt(figures[k], k) for k in ci.TWO_MODEL_KEYS)
        lines.append(f"| {label}{f' ({picked})' if picked else ''} | {cells} | {delta} |")
    lines.append("| random | 0.500 | 50.0% | 80.0% | 1.00x | |")
    return lines


def n_model_pair(name: str, train: Outcomes, test: Outcomes, embed, args) -> list[str]:
    truth = quality(test)
    costs = np.asarray(model_costs(train)[0])
    lines = [
        f"\n#### {name} ({len(train)} train, {len(test)} test prompts, 9 models)\n",
        "| router (picked) | AIQ |",
        "|---|---|",
    ]
    for label, (pred, picked) in routers(train, test, embed, args.seed).items():
        aiq = ci.bootstrap_aiq(pred, truth, costs, max(args.resamples // 5, 50), args.seed)
        lines.append(f"| {label}{f' ({picked})' if picked else ''} | {fmt(aiq, 'AIQ')} |")
    lines.append(f"| random mix (single-model hull) | {ci.single_hull_aiq(truth, costs):.3f} |")
    return lines


def run(args, embed, root: Path = DATA, emit=print) -> None:
    """Each table is emitted as soon as it is done (a long run still leaves its early pairs).
    With `args.small_signals`, the RouteLLM pairs run on subsamples with the signal rows
    instead of in full."""
    two = [s for s in args.sets if s in ROUTELLM]
    if len(two) >= 2:
        sets = {name: load_routellm(name, root) for name in two}
        signals = None
        if args.small_signals:
            emit(
                f"\n### RouteLLM sets with the small model's signals "
                f"(seeded subsamples of at most {args.small_signals} prompts per set)\n"
            )
            signals = small_model_signals()
            sets = {name: subsample(sets[name], args.small_signals, args.seed) for name in two}
        else:
            emit("\n### RouteLLM sets, trained on one, tested on another\n")
        for a in two:
            for b in two:
                if a != b:
                    started = time.perf_counter()
                    emit("\n".join(two_model_pair(
                        f"{a} -> {b}", sets[a], sets[b], embed, args, signals
                    )))  # fmt: skip
                    emit(f"<!-- {a} -> {b}: {time.perf_counter() - started:.0f}s -->")
    if "LLMRouter-9" in args.sets:
        full = load_outcomes(root / "llmrouter" / "train.json")
        tasks = np.array([llmrouter_task(t[-1]) for t in full.turns])
        emit("\n### LLMRouter, each task left out in turn\n")
        for task in sorted(set(tasks)):
            train = full.subset(np.flatnonzero(tasks != task))
            test = full.subset(np.flatnonzero(tasks == task))
            emit("\n".join(n_model_pair(f"others -> {task}", train, test, embed, args)))


def subsample(outcomes: Outcomes, most: int, seed: int) -> Outcomes:
    """At most `most` items, drawn without replacement (seeded), in their original order."""
    if len(outcomes) <= most:
        return outcomes
    rng = np.random.default_rng(seed)
    return outcomes.subset(np.sort(rng.choice(len(outcomes), most, replace=False)))


def small_model_signals(model: str = "gemma-3-270m"):
    """The embedded model's first-token features of an outcome set's last turns, each prompt's
    kept in a JSON-lines file under the state directory (keyed by the prompt's hash)."""
    from smallfirst.config import ModelConfig
    from smallfirst.models.llamacpp import LlamaCppProvider

    file = state_dir() / "cache" / "small-signals" / f"{model}.jsonl"
    known: dict[str, list[float]] = {}
    if file.exists():
        for line in file.read_text().splitlines():
            digest, values = json.loads(line)
            known[digest] = values
    # the provider itself, not the gateway's resilient path: no request deadline (a busy
    # machine made one prompt of 800 miss the default 120 s) and nothing to fail over to
    provider = LlamaCppProvider(ModelConfig(name=model, backend="llamacpp"))

    def signals(outcomes: Outcomes) -> np.ndarray:
        texts = [turns[-1] for turns in outcomes.turns]
        digests = [hashlib.sha256(t.encode("utf-8", "replace")).hexdigest()[:24] for t in texts]
        missing = [i for i, d in enumerate(digests) if d not in known]
        if missing:
            started = time.perf_counter()
            found = asyncio.run(first_token_signals(provider, [texts[i] for i in missing]))
            file.parent.mkdir(parents=True, exist_ok=True)
            with file.open("a") as handle:
                for i, row in zip(missing, found.tolist(), strict=True):
                    known[digests[i]] = row
                    handle.write(json.dumps([digests[i], row]) + "\n")
            took = time.perf_counter() - started
            print(
                f"<!-- small-model signals: {len(missing)} prompts in {took:.0f}s -->", flush=True
            )
        return np.asarray([known[d] for d in digests], dtype=np.float64)

    return signals


def cached_embedder(embedder: str):
    cache = state_dir() / "cache" / "router-embeddings"

    def embed(outcomes: Outcomes, template: Template) -> np.ndarray:
        return embed_cached(embedder, outcomes.turns, cache, template)

    return embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[*ROUTELLM, "LLMRouter-9"])
    parser.add_argument("--embedder", default="static")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--small-signals",
        type=int,
        default=0,
        metavar="N",
        help="run the RouteLLM pairs on N prompts a set, with the embedded model's signals",
    )
    args = parser.parse_args()
    run(args, cached_embedder(args.embedder), emit=lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
