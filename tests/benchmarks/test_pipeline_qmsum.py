"""The pipeline benchmark is code too: its metric, its stand-in and one short real run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline_qmsum.py"
spec = importlib.util.spec_from_file_location("bench_pipeline_qmsum", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_pipeline_qmsum"] = bench
spec.loader.exec_module(bench)


def test_rouge_l_is_the_lcs_f_measure():
    assert bench.rouge_l("the cat sat", "the cat sat") == 1.0
    assert bench.rouge_l("", "anything") == 0.0
    # LCS of "a b c d" and "a c e" is "a c": P = 2/4, R = 2/3, F = 4/7
    assert bench.rouge_l("A b c d", "a c e") == pytest.approx(4 / 7)


def test_bootstrap_interval_brackets_the_mean():
    low, high = bench.bootstrap_interval([0.1, 0.2, 0.3, 0.4])
    assert low <= 0.25 <= high


def test_one_truncated_meeting_runs_end_to_end(embedded_model_path, capsys):
    data = shared_data("tasks", "qmsum", "val.jsonl")
    summary = bench.main(
        ["--limit", "1", "--max-chars", "1500", "--data", str(data), "--layout", "input_first"]
    )
    assert summary["documents"] == 1 and summary["completion_rate"] == 1.0
    assert 0.0 <= summary["steps_kept_small"] <= 1.0
    assert 0.0 <= summary["rouge_l_mean"] <= 1.0
    assert summary["pipeline_usd"] > 0 or summary["steps_kept_small"] == 1.0
    assert summary["tokens_evaluated_per_document"] > 0
    assert "completion rate" in capsys.readouterr().out


def test_the_layout_can_be_set_for_every_task_step():
    pipeline = bench.with_layout(bench.Pipeline.from_yaml(bench.PIPELINE), "instruction_first")
    assert {t.spec.layout for t in pipeline.tasks.values()} == {"instruction_first"}


def test_a_sample_is_drawn_with_its_seed():
    data = shared_data("tasks", "qmsum", "val.jsonl")
    first = bench.load_meetings(data, None, 100, sample=3, seed=1)
    again = bench.load_meetings(data, None, 100, sample=3, seed=1)
    other = bench.load_meetings(data, None, 100, sample=3, seed=2)
    assert len(first) == 3 and first == again and first != other
