"""The distillation benchmark is code too: its sampling, baseline and coverage measure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from tests.conftest import shared_data

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "distill.py"
spec = importlib.util.spec_from_file_location("bench_distill", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_distill"] = bench
spec.loader.exec_module(bench)


def test_per_class_sampling_is_balanced_and_seeded():
    rows = [(f"t{i}", "ab"[i % 2]) for i in range(20)]
    picked = bench.per_class(rows, 3, seed=1)
    assert sorted(label for _, label in picked) == ["a"] * 3 + ["b"] * 3
    assert picked == bench.per_class(rows, 3, seed=1) != bench.per_class(rows, 3, seed=2)
    assert bench.per_class(rows, None, seed=0) == rows


def test_knn_vote_weights_by_similarity():
    train = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    test = np.array([[0.1, 1.0], [1.0, 0.0]], dtype=np.float32)
    assert bench.knn_vote(train, ["x", "x", "y"], test, k=1) == ["y", "x"]
    assert bench.knn_vote(train, ["x", "x", "y"], test, k=3) == ["y", "x"]


def test_coverage_at_target():
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, True])
    assert bench.coverage_at(confidence, correct, 1.0) == 0.5
    assert bench.coverage_at(confidence, correct, 0.75) == 1.0
    assert bench.coverage_at(confidence, ~correct, 0.5) == 0.0


def test_datasets_load_with_disjoint_splits():
    shared_data("tasks", "banking77")
    snips = bench.snips()
    assert len(snips.labels) == 7 and len(snips.train) == 2100 and len(snips.test) == 700
    banking = bench.banking77()
    assert len(banking.labels) == 77 and len(banking.test) == 3080
