"""The batch benchmark runs end to end on a tiny slice (numbers are not checked, only shape)."""

import sys
from pathlib import Path

import pytest

from tests.conftest import shared_data

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_accuracy_counts_labels_by_id():
    from batch import accuracy

    rows = [{"id": "a", "label": "x"}, {"id": "b", "label": "y"}, {"id": "c"}]
    assert accuracy(rows, {"a": "x", "b": "x", "c": "x"}) == pytest.approx(1 / 3)


async def test_benchmark_runs_on_a_tiny_slice(embedded_model_path, capsys):
    shared_data("tasks", "snips")
    from batch import main

    figures = await main(["--n", "3", "--bank", "70", "--concurrency", "2"])
    table = capsys.readouterr().out
    assert "plain loop" in table and "student -> Gemma" in table
    assert 0.0 <= figures["kept"] <= 1.0 and 0.0 <= figures["tiny_acc"] <= 1.0
