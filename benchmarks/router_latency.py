"""Decision time per router kind on one CPU core, embedding included.

    python benchmarks/router_latency.py [--train mmlu|gsm8k] [--n 300] [--rating-n 20]
                                        [--kinds knn linear mlp] [--embedders static minilm]

Learned routers are trained on a shared RouteLLM set (MMLU: 14k stored neighbours for kNN)
and timed through `Router.decide` on GSM8K prompts they did not see, one request at a time
after a warm-up, with torch and BLAS limited to one thread. Prints p50 / p99 / mean in ms.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from smallfirst.config import Config, embedded_model, state_dir  # noqa: E402
from smallfirst.models.registry import Registry  # noqa: E402
from smallfirst.routing.features import embed_cached  # noqa: E402
from smallfirst.routing.learned import LearnedRouter, train_router  # noqa: E402
from smallfirst.routing.outcomes import load_outcomes  # noqa: E402
from smallfirst.routing.rating import build_rating  # noqa: E402
from smallfirst.routing.rules import RulesRouter  # noqa: E402
from smallfirst.types import Message  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "routing" / "routellm"
TRAIN = {"mmlu": "mmlu_responses", "gsm8k": "gsm8k__gsm8k_responses.csv"}


def time_decisions(router, prompts: list[str], warmup: int = 5) -> np.ndarray:
    for p in prompts[:warmup]:
        router.decide([Message("user", p)])
    times = []
    for p in prompts:
        started = time.perf_counter()
        router.decide([Message("user", p)])
        times.append(time.perf_counter() - started)
    return np.array(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", choices=list(TRAIN), default="mmlu")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rating-n", type=int, default=20)
    parser.add_argument("--embedders", nargs="+", default=["static", "minilm"])
    parser.add_argument("--kinds", nargs="+", default=["knn", "linear"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    train = load_outcomes(DATA / TRAIN[args.train])
    prompts = [t[-1] for t in load_outcomes(DATA / TRAIN["gsm8k"]).turns[-args.n :]]
    cache = state_dir() / "cache" / "router-embeddings"
    routers = {"rules (pii, task, length)": RulesRouter("rules", [], "small", "local")}
    for emb in args.embedders:
        vectors = embed_cached(emb, train.turns, cache)
        for kind in args.kinds:
            model = train_router(train, kind, emb, vectors)
            routers[f"{kind}/{emb}"] = LearnedRouter(kind, model, {}, 0.1)
    print(f"trained on {args.train} ({len(train)} prompts); timing {len(prompts)} GSM8K prompts")
    print(f"torch threads: {torch.get_num_threads()}\n")
    print("| router | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|")
    for name, router in routers.items():
        ms = time_decisions(router, prompts)
        p50, p99 = np.percentile(ms, [50, 99])
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {ms.mean():.3f} |")
    if args.rating_n:
        one_thread = embedded_model().model_copy(update={"threads": 1})
        rating = build_rating("rating", None, Registry(Config(models=[one_thread])))
        ms = time_decisions(rating, prompts[: args.rating_n], warmup=2)
        print(
            f"| rating (gemma-3-270m, 1 forward pass) | {np.percentile(ms, 50):.1f} | "
            f"{np.percentile(ms, 99):.1f} | {ms.mean():.1f} |"
        )


if __name__ == "__main__":
    main()
