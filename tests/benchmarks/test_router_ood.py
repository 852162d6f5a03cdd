"""The out-of-domain and in-domain router benchmarks are code too: their tables and labels."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np

from smallfirst.routing import metrics
from smallfirst.routing.outcomes import Outcomes
from smallfirst.routing.templates import Template
from tests.routing.synthetic import synthetic_rows


def _load(name: str):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module
    spec.loader.exec_module(module)
    return module


ood = _load("router_ood")
quality_bench = _load("router_quality")


def _hashed(outcomes: Outcomes, template: Template) -> np.ndarray:
    """A deterministic bag-of-words embedder: cheap, and enough to tell maths from greetings."""
    out = np.zeros((len(outcomes), 64), dtype=np.float32)
    for i, turns in enumerate(outcomes.turns):
        for word in template.split(turns[-1])[1].lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _outcomes(offset: int, models: int = 2) -> Outcomes:
    rows = synthetic_rows(6, offset)
    scores = np.array([[r["small"], r["large"]] for r in rows], dtype=float)
    if models == 3:
        scores = np.column_stack([scores[:, 0], (scores[:, 0] + scores[:, 1]) / 2, scores[:, 1]])
    names = ["small", "mid", "large"][:models] if models == 3 else ["small", "large"]
    costs = dict(zip(names, [0.1, 0.5, 1.0][: len(names)], strict=False))
    return Outcomes([[str(r["prompt"])] for r in rows], names, scores, costs=costs)


def test_two_model_pair_prints_every_variant_with_intervals() -> None:
    args = Namespace(resamples=50, seed=0)
    lines = ood.two_model_pair("A -> B", _outcomes(0), _outcomes(30), _hashed, args)
    table = "\n".join(lines)
    for label in ("kNN baseline", "selected on train folds", "prompt features", "ensemble"):
        assert label in table
    knn_row = next(line for line in lines if line.startswith("| kNN baseline"))
    apgr = float(knn_row.split("|")[2].split()[0])
    assert apgr > 0.6  # maths vs greetings transfers to new names and numbers
    assert "| random | 0.500 |" in table


def test_n_model_pair_reports_aiq_beside_the_single_model_hull() -> None:
    args = Namespace(resamples=50, seed=0)
    lines = ood.n_model_pair("others -> x", _outcomes(0, 3), _outcomes(30, 3), _hashed, args)
    assert any(line.startswith("| random mix (single-model hull)") for line in lines)
    assert sum("[" in line for line in lines) == 4


def test_llmrouter_tasks_by_their_visible_format() -> None:
    assert ood.llmrouter_task("Q: There are 3 houses in a row, numbered 1") == "logic puzzles"
    assert ood.llmrouter_task("Write a python function to find the sum") == "code"
    assert ood.llmrouter_task("who was the first person to walk on the moon") == "other questions"


def test_in_domain_rows_use_routellms_saving_vs_random() -> None:
    weak, strong = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])
    out = Outcomes(
        [["a"], ["b"], ["c"], ["d"]], ["weak", "strong"], np.column_stack([weak, strong])
    )
    random_row = quality_bench.two_model_row(out, metrics.random_scores(4), 0)
    assert random_row["APGR"] == 0.5 and random_row["saving vs random"] == 1.0
    oracle = quality_bench.two_model_row(out, metrics.oracle_scores(weak, strong), 100)
    assert oracle["saving vs random"].value == 2.0  # PGR 0.5 at 25% strong calls
    assert set(quality_bench.PUBLISHED["MT-Bench"]) <= set(quality_bench.TWO_KEYS)


def test_small_model_signals_add_their_rows_on_subsamples() -> None:
    args = Namespace(resamples=50, seed=0)
    train, test = ood.subsample(_outcomes(0), 40, 0), _outcomes(30)
    assert len(train) == min(40, len(_outcomes(0)))

    def signals(outcomes: Outcomes) -> np.ndarray:  # a stand-in: prompt length as "confidence"
        return np.array([[len(t[-1]), 0.0, 1.0] for t in outcomes.turns], dtype=float)

    table = "\n".join(ood.two_model_pair("A -> B", train, test, _hashed, args, signals))
    for label in (
        "kNN + small-model signals (k=40)",
        "selected + small-model signals",
        "selected + prompt features + small-model signals",
    ):
        assert f"| {label}" in table


def test_a_subsample_keeps_order_and_draws_without_replacement() -> None:
    full = _outcomes(0)
    part = ood.subsample(full, 10, 3)
    order = [full.turns.index(t) for t in part.turns]
    assert len(part) == 10 and order == sorted(order) and len(set(order)) == 10
    assert ood.subsample(full, 10, 3).turns == part.turns
