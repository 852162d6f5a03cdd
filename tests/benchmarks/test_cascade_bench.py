"""The cascade benchmark is code too: its split, prompt, calibration and strategy runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from smallfirst.config import Config
from smallfirst.models.registry import Registry
from smallfirst.models.replay import ReplayBook
from smallfirst.routing.cascade import Cascade
from smallfirst.routing.fallback import FailoverCaller
from smallfirst.routing.rung_scores import RungScore
from smallfirst.types import CompletionRequest
from tests.conftest import shared_data

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cascade.py"
spec = importlib.util.spec_from_file_location("bench_cascade", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_cascade"] = bench
spec.loader.exec_module(bench)


def test_splits_are_disjoint_and_balanced_in_shots():
    items = bench.load_items(shared_data("tasks", "tweeteval_sentiment"), 20, 30, seed=0)
    assert len(items.calibration) == 20 and len(items.test) == 30
    assert sorted(label for _, label in items.shots) == sorted(bench.LABELS * 2)
    texts = [t for t, _ in items.shots + items.calibration + items.test]
    assert len(texts) == len(set(texts))
    again = bench.load_items(shared_data("tasks", "tweeteval_sentiment"), 20, 30, seed=0)
    assert again.test == items.test


def test_prompt_ends_with_the_question():
    prompt = bench.prompt_for([("good", "positive")], "bad day")
    assert prompt.endswith("Tweet: bad day\nSentiment:")
    assert "Tweet: good\nSentiment: positive" in prompt


def test_calibration_targets_the_large_tier_accuracy_by_default(tmp_path):
    path = bench.write_book([("a", "positive"), ("b", "negative")], tmp_path)
    book = ReplayBook.from_csv(path)  # always right: target 1.0
    rows = [
        RungScore("a", "positive", "positive", True, {"logprob": 0.9}),
        RungScore("b", "negative", "neutral", False, {"logprob": 0.4}),
    ]
    calibration, target = bench.calibrate(rows, book, None)
    # two items cannot vouch for 100% on the 95% lower bound: nothing is kept
    assert target == 1.0 and not calibration.achievable and calibration.kept_share == 0.0


async def test_the_three_strategies_on_replay_tiers(tmp_path):
    gold = [(f"tweet {i}", bench.LABELS[i % 3]) for i in range(9)]
    path = bench.write_book(gold, tmp_path)
    models = [
        {"name": "s", "backend": "replay", "tier": "small",
         "options": {"outcomes": str(path), "accuracy": 0.5, "seed": 1}},
        {"name": "l", "backend": "replay", "tier": "large", "price": bench.LARGE_PRICE,
         "options": {"outcomes": str(path)}},
    ]  # fmt: skip
    checks = [{"kind": "agreement", "samples": 2}]
    config = Config.model_validate(
        {"models": models, "cascades": {"c": {"rungs": ["s", "l"], "checks": checks}}}
    )
    registry = Registry(config)
    cascade = Cascade("c", config.cascades["c"], registry)

    def make(text: str) -> CompletionRequest:
        return CompletionRequest(bench.prompt_for([], text))

    small, rows = await bench.run_small(cascade, gold, make)
    large = await bench.run_large(FailoverCaller(registry), "l", gold, make)
    cascaded = await bench.run_cascade(cascade, gold, make)
    assert large.accuracy == 1.0 and large.large_calls == 9 and large.cost_usd > 0
    assert small.accuracy == np.mean([r.correct for r in rows]) and small.cost_usd == 0
    # replay is deterministic, so every sample agrees: the cascade keeps all small answers
    assert cascaded.kept_small == 9 and cascaded.accuracy == small.accuracy
    table = bench.table([small, large, cascaded], large)
    assert table.count("\n") == 4 and "| 100.0% |" in table
