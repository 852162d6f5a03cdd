"""The fine-tuning benchmark is code too: its banks train, its intervals hold (no training here:
the real LoRA run is tests/distill/test_finetune_smoke.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from smallfirst.distill.finetune import FinetuneSettings, prepare_finetune
from smallfirst.tasks.spec import parse_spec
from tests.conftest import shared_data

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
spec = importlib.util.spec_from_file_location("bench_finetune", BENCHMARKS / "finetune.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_finetune"] = bench
spec.loader.exec_module(bench)


def test_slot_banks_hold_teacher_style_json_and_prepare_for_training(
    tmp_path: Path, embedded_model_path: str
):
    shared_data("tasks", "snips")
    task_set = bench.SETS["slots"](5, 30, 0)
    bank = bench.fill_bank(task_set, tmp_path / "slots.sqlite")
    stored = bank.examples()[0]
    assert json.loads(stored.output) == task_set.bank[0]["output"] and stored.label is None
    plan = prepare_finetune(
        str(tmp_path / "slots.sqlite"),
        FinetuneSettings(base=embedded_model_path),
        spec=parse_spec(task_set.spec),
    )
    assert (len(plan.train), len(plan.valid)) == (27, 3)


async def test_the_scoring_tasks_run_on_the_embedded_model(embedded_model_path: str):
    """The kNN task on the base model and the zero-shot one each score an item (a run once
    trained 36 minutes and then failed here, on an unvalidated few-shot setting)."""
    from dataclasses import replace

    from smallfirst.config import Config
    from smallfirst.models.registry import Registry

    shared_data("tasks", "snips")
    task_set = bench.SETS["slots"](1, 8, 0)
    task_set = replace(task_set, items=task_set.items[:1])
    knn, zero = bench.scoring_tasks(parse_spec(task_set.spec), task_set, 2)
    assert (knn.spec.few_shot.mode, knn.spec.few_shot.k, zero.spec.few_shot.mode) == (
        "knn",
        2,
        "none",
    )
    registry = Registry(Config())
    try:
        for task in (knn, zero):
            score = await bench.score_task("t", task, task_set, registry)
            assert score.n == 1
    finally:
        await registry.aclose()


def test_intervals_cover_the_point_estimate():
    accuracy = bench.interval("a", [(1, 1, 1)] * 8 + [(0, 1, 1)] * 2, False, 0.0)
    assert accuracy.value == pytest.approx(0.8) and accuracy.low < 0.8 < accuracy.high
    f1 = bench.interval("f", [(2, 2, 3), (1, 2, 1), (0, 0, 2)], True, 0.0)
    assert f1.value == pytest.approx(2 * 3 / (2 * 3 + 1 + 3))
    assert f1.low <= f1.value <= f1.high


def test_defaults_are_the_issue_budgets():
    args = bench.parse_args([])
    assert args.pairs == [250, 1000] and set(args.sets) == {"slots", "banking77"}
