"""Cascade benchmark: small-only vs large-only vs the cascade, accuracy and $.

Task: TweetEval sentiment (negative / neutral / positive), test split, a fixed-seed sample.
Small tier: the embedded Gemma 3 270M, few-shot prompt, output constrained to the labels by a
grammar, token logprobs on. Large tier: NO large model is reachable here, so a replay server
(`smallfirst.testing.replay`, OpenAI-compatible over HTTP) stands in: it answers the gold label
with a configured accuracy (wrong answers are other labels, fixed by the seed), fails a
configured share of requests with 503, and is priced like a large cloud model. Every table says so.

The cascade keeps Gemma's answer when it is a label and its token confidence reaches a
threshold calibrated on a separate labelled split; the threshold is the lowest whose kept answers
reach the target accuracy (default: the large tier's accuracy on the calibration split).

    nice python benchmarks/cascade.py --n-test 100 --n-cal 60
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smallfirst.config import Config
from smallfirst.errors import SmallfirstError
from smallfirst.models.llamacpp import LlamaCppProvider
from smallfirst.models.registry import Registry, register_backend
from smallfirst.models.replay import ReplayBook
from smallfirst.routing.cascade import Cascade
from smallfirst.routing.checks import normalize_answer
from smallfirst.routing.fallback import FailoverCaller
from smallfirst.routing.rung_scores import score_rung
from smallfirst.routing.thresholds import Calibration, calibrate_threshold
from smallfirst.testing import BackgroundServer
from smallfirst.testing.replay import ReplayServer
from smallfirst.types import CompletionRequest, Generation, GenerationParams

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
LABELS = ["negative", "neutral", "positive"]
GRAMMAR = 'root ::= " "? ("negative" | "neutral" | "positive")'
LARGE_PRICE = {"input": 2.5, "output": 10.0}
"""$/Mtok of the stand-in large model (GPT-4o's list price)."""


class MemoLlamaCpp(LlamaCppProvider):
    """The embedded model, answering each distinct request once: at temperature 0 with a fixed
    seed it is deterministic, so the cascade reuses the small-only pass's answers (same text,
    tokens and logprobs) instead of paying for them twice on two shared CPU cores."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.memo: dict[tuple, Generation] = {}

    async def complete(self, request: CompletionRequest) -> Generation:
        params = request.params
        key = (request.prompt, params.max_tokens, params.grammar, params.seed, params.logprobs)
        if key not in self.memo:
            self.memo[key] = await super().complete(request)
        return self.memo[key]


@dataclass
class Items:
    shots: list[tuple[str, str]]
    calibration: list[tuple[str, str]]
    test: list[tuple[str, str]]


def load_items(folder: Path, n_cal: int, n_test: int, seed: int, shots_per_label: int = 2) -> Items:
    """Disjoint few-shot examples, calibration items and test items from the test split."""
    texts = (folder / "test_text.txt").read_text(encoding="utf-8").splitlines()
    labels = (folder / "test_labels.txt").read_text(encoding="utf-8").splitlines()
    rows = [(t.strip(), LABELS[int(y)]) for t, y in zip(texts, labels, strict=True) if t.strip()]
    unique = list(dict(rows).items())
    random.Random(seed).shuffle(unique)
    shots: list[tuple[str, str]] = []
    for label in LABELS:
        shots += [r for r in unique if r[1] == label and len(r[0]) < 120][:shots_per_label]
    random.Random(seed + 1).shuffle(shots)
    rest = [r for r in unique if r not in shots]
    return Items(shots, rest[:n_cal], rest[n_cal : n_cal + n_test])


def prompt_for(shots: list[tuple[str, str]], text: str) -> str:
    lines = ["Classify the sentiment of each tweet as negative, neutral or positive.", ""]
    for shot, label in shots:
        lines += [f"Tweet: {shot}", f"Sentiment: {label}", ""]
    lines += [f"Tweet: {text}", "Sentiment:"]
    return "\n".join(lines)


def build_config(replay_url: str, threads: int, target_threshold: float) -> Config:
    return Config.model_validate(
        {
            "models": [
                {
                    "name": "gemma-3-270m",
                    "backend": "llamacpp",
                    "tier": "small",
                    "context": 1024,
                    "threads": threads,
                    "prompt_style": "completion",
                },
                {
                    "name": "large-replay",
                    "backend": "openai",
                    "base_url": replay_url,
                    "tier": "large",
                    "price": LARGE_PRICE,
                    "timeout_s": 30,
                },
            ],
            "failover": {"retries": 3, "backoff_s": 0.05},
            "cascades": {
                "sentiment": {
                    "rungs": ["small", "large"],
                    "checks": [
                        {"kind": "constraint", "labels": LABELS},
                        {"kind": "logprob", "threshold": target_threshold},
                    ],
                }
            },
        }
    )


def request_for(shots: list[tuple[str, str]], max_tokens: int):
    def make(text: str) -> CompletionRequest:
        params = GenerationParams(
            max_tokens=max_tokens, temperature=0.0, seed=0, logprobs=True, grammar=GRAMMAR
        )
        return CompletionRequest(prompt_for(shots, text), params)

    return make


@dataclass
class Outcome:
    name: str
    correct: int
    n: int
    cost_usd: float
    kept_small: int
    large_calls: int
    errors: int
    retries: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


def right(answer: str, gold: str) -> bool:
    return normalize_answer(answer) == normalize_answer(gold)


async def run_small(cascade: Cascade, items, make) -> tuple[Outcome, list]:
    rows = await score_rung(cascade, items, make, progress=_progress("small-only", len(items)))
    correct = sum(r.correct for r in rows)
    errors = sum(r.error is not None for r in rows)
    return Outcome(
        "small only (Gemma 3 270M)", correct, len(rows), 0.0, len(rows), 0, errors, 0
    ), rows


async def run_large(caller: FailoverCaller, model: str, items, make) -> Outcome:
    outcome = Outcome("large only (replay stand-in)", 0, len(items), 0.0, 0, 0, 0, 0)
    for text, gold in items:
        try:
            result = await caller.call(model, make(text))
        except SmallfirstError:
            outcome.errors += 1
            continue
        outcome.correct += right(result.generation.text, gold)
        outcome.cost_usd += result.cost_usd
        outcome.large_calls += 1
        outcome.retries += sum(h.kind == "failure" for h in result.hops)
    return outcome


async def run_cascade(cascade: Cascade, items, make) -> Outcome:
    outcome = Outcome("cascade small -> large", 0, len(items), 0.0, 0, 0, 0, 0)
    tick = _progress("cascade", len(items))
    for done, (text, gold) in enumerate(items, start=1):
        try:
            result = await cascade.run(make(text))
        except SmallfirstError:
            outcome.errors += 1
            continue
        outcome.correct += right(result.generation.text, gold)
        outcome.cost_usd += result.cost_usd
        outcome.kept_small += result.model == cascade.rungs[0]
        outcome.large_calls += any(
            h.kind == "answer" and h.model == cascade.rungs[-1] for h in result.hops
        )
        outcome.retries += sum(h.kind == "failure" for h in result.hops)
        tick(done)
    return outcome


def _progress(label: str, total: int):
    started = time.perf_counter()

    def tick(done: int) -> None:
        if done % 25 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"  {label}: {done}/{total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    return tick


def calibrate(rows, book: ReplayBook, target: float | None) -> tuple[Calibration, float]:
    """Threshold for the logprob check from the calibration split; the default target is the
    large tier's accuracy on the same items."""
    large_right = np.array([right(book.reply(r.prompt), r.gold) for r in rows])
    scores = np.array([r.scores.get("logprob") or 0.0 for r in rows])
    wanted = float(large_right.mean()) if target is None else target
    return calibrate_threshold(scores, np.array([r.correct for r in rows]), wanted), wanted


def write_book(items: list[tuple[str, str]], folder: Path) -> Path:
    path = folder / "gold.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "label"])
        writer.writerows(items)
    return path


def table(outcomes: list[Outcome], baseline: Outcome) -> str:
    lines = [
        "| strategy | accuracy | $ total | $ / 1k req | vs large-only $ | kept on small | "
        "large calls | errors | failed attempts retried |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        share = o.cost_usd / baseline.cost_usd if baseline.cost_usd else float("nan")
        lines.append(
            f"| {o.name} | {o.accuracy:.3f} | ${o.cost_usd:.5f} | ${1000 * o.cost_usd / o.n:.4f} "
            f"| {share:.1%} | {o.kept_small / o.n:.1%} | {o.large_calls} | {o.errors} "
            f"| {o.retries} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> str:
    items = load_items(
        DATA / "tweeteval_sentiment", args.n_cal, args.n_test, args.seed, args.shots_per_label
    )
    make = request_for(items.shots, args.max_tokens)
    register_backend("llamacpp", MemoLlamaCpp)
    with tempfile.TemporaryDirectory() as tmp:
        book_path = write_book(items.calibration + items.test, Path(tmp))
        book = ReplayBook.from_csv(
            book_path, accuracy=args.large_accuracy, error_rate=args.error_rate, seed=args.seed
        )
        truth = ReplayBook.from_csv(book_path, accuracy=args.large_accuracy, seed=args.seed)
        with BackgroundServer(ReplayServer(book, model="large-replay").app) as server:
            registry = Registry(build_config(server.url + "/v1", args.threads, 0.0))
            try:
                cascade = Cascade("sentiment", registry.config.cascades["sentiment"], registry)
                cal_rows = await score_rung(
                    cascade, items.calibration, make, progress=_progress("calibration", args.n_cal)
                )
                small, _ = await run_small(cascade, items.test, make)
                large = await run_large(FailoverCaller(registry), "large-replay", items.test, make)
                runs = []
                for wanted in args.targets or [None]:
                    calibration, target = calibrate(cal_rows, truth, wanted)
                    cascade.checks[1].threshold = calibration.threshold
                    cascaded = await run_cascade(cascade, items.test, make)
                    cascaded.name += f" (target {target:.2f})"
                    runs.append((calibration, target, cascaded))
            finally:
                await registry.aclose()
    return report(args, items, runs, [small, large], large, cal_rows)


def report(args, items: Items, runs, outcomes, large, cal_rows) -> str:
    cal_accuracy = sum(r.correct for r in cal_rows) / len(cal_rows)
    head = (
        f"TweetEval sentiment, {len(items.test)} test items, {len(items.calibration)} calibration "
        f"items, {len(items.shots)} few-shot examples, seed {args.seed}.\n"
        f"LARGE TIER IS A REPLAY STAND-IN, not a real model: gold labels answered with accuracy "
        f"{args.large_accuracy}, {args.error_rate:.0%} of requests fail with 503 (retried), "
        f"priced ${LARGE_PRICE['input']}/${LARGE_PRICE['output']} per Mtok in/out, tokens ~ "
        f"chars/4. Small tier: embedded Gemma 3 270M (local, $0), label grammar, "
        f"max_tokens {args.max_tokens}; the cascade reuses the small-only pass's answers "
        f"(deterministic at temperature 0).\n"
        f"Calibration: small-rung accuracy {cal_accuracy:.3f}.\n"
    )
    for calibration, target, _ in runs:
        reached = "reached" if calibration.achievable else "NOT reachable: everything escalates"
        head += (
            f"- target kept-answer accuracy {target:.3f}: logprob threshold "
            f"{calibration.threshold:.4f} ({reached}), kept share on calibration "
            f"{calibration.kept_share:.1%}\n"
        )
    return head + "\n" + table([*outcomes, *(run for _, _, run in runs)], large)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-cal", type=int, default=60)
    parser.add_argument(
        "--targets", type=float, nargs="*", default=None, help="default: the large accuracy"
    )
    parser.add_argument("--large-accuracy", type=float, default=0.8)
    parser.add_argument("--error-rate", type=float, default=0.02)
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots-per-label", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print(asyncio.run(main_async(parse_args(argv))))


if __name__ == "__main__":
    main()
