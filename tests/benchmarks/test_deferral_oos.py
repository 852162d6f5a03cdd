"""The out-of-scope deferral benchmark is code too: its seeded splits and its tallies."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "deferral_oos.py"
spec = importlib.util.spec_from_file_location("bench_deferral_oos", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_deferral_oos"] = bench
spec.loader.exec_module(bench)

INTENTS = [f"intent{i}" for i in range(8)]


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def encode(texts: list[str]) -> np.ndarray:
    """Each intent a direction in 24-D, each text a small seeded jitter around it."""
    rows = []
    for text in texts:
        centre = np.zeros(24)
        centre[INTENTS.index(text.split()[0])] = 1.0
        noise = np.random.default_rng(_seed(text)).normal(scale=0.12, size=24)
        rows.append(centre + noise)
    x = np.asarray(rows)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def tiny() -> bench.Dataset:
    train = [(f"{i} train {n}", i) for i in INTENTS for n in range(40)]
    test = [(f"{i} test {n}", i) for i in INTENTS for n in range(15)]
    return bench.Dataset("tiny", train, test, unseen=2, background=1, per_intent=30)


def test_draws_are_seeded_and_disjoint():
    ds = tiny()
    first = bench.draw(ds, 0)
    assert first == bench.draw(ds, 0) != bench.draw(ds, 1)
    groups = [set(first.in_scope), set(first.unseen), set(first.background)]
    assert sum(map(len, groups)) == len(INTENTS) == len(set().union(*groups))
    assert (len(first.unseen), len(first.background)) == (2, 1)
    picked = bench.sample(ds.train, first.in_scope, 3, 0)
    assert len(picked) == 3 * len(first.in_scope) == len(set(picked))
    assert {y for _, y in picked} == set(first.in_scope)


def test_one_draw_trains_on_in_scope_intents_and_tallies_the_test_split(capsys):
    ds = tiny()
    split = bench.draw(ds, 0)
    results = bench.run_draw(ds, split, encode, list(bench.METHODS))
    for tally in results.values():
        assert tally.in_scope == 15 * len(split.in_scope) and tally.oos == 15 * 2
        assert 0 <= tally.right <= tally.answered <= tally.in_scope
    # clusters this clean: confidence answers nearly everything; familiarity defers the unseen
    assert results["+ familiarity"].oos_answered <= results["confidence, point"].oos_answered
    assert results["+ familiarity"].oos_answered / 30 <= 0.05
    bench.print_table(ds, [results, results], list(bench.METHODS))
    out = capsys.readouterr().out
    assert "| **+ background** | all 2 draws |" in out and "(N=60)" in out
    bench.print_draws(ds, range(2))
    assert "- seed 1: unseen " in capsys.readouterr().out
