"""The task-quality benchmark is code too: data splits, metrics and scoring of real runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.models.registry import Registry
from smallfirst.testing.scripted import Script
from tests.conftest import shared_data

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
_spec = importlib.util.spec_from_file_location(
    "bench_tasks_quality", BENCH_DIR / "tasks_quality.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_tasks_quality"] = bench
_spec.loader.exec_module(bench)
data = sys.modules["tasks_data"]


def test_field_counts_fold_case_and_ignore_nulls():
    predicted = {"city": "Paris ", "state": None, "timeRange": "tomorrow", "country": "France"}
    gold = {"city": "paris", "timeRange": "next week"}
    assert bench.field_counts(predicted, gold) == (1, 3, 2)


@pytest.mark.parametrize("name", ["sentiment", "banking77", "snips", "slots"])
def test_sets_load_seeded_with_outputs_in_the_output_space(name):
    shared_data("tasks")
    first = data.SETS[name](5, 20, seed=1)
    assert len(first.items) == 5 and len(first.bank) == 20
    assert first.items == data.SETS[name](5, 20, seed=1).items
    assert first.items != data.SETS[name](5, 20, seed=2).items
    if first.spec["kind"] == "classify":
        labels = first.spec["labels"]
        assert all(gold in labels for _, gold in first.items)
        assert all(e["output"] in labels for e in first.bank)
    else:
        keys = set(first.spec["schema"]["properties"])
        assert all(set(gold) <= keys for _, gold in first.items)


def test_weather_fields_take_the_first_piece_of_each_slot():
    pieces = [
        {"text": "rain in "},
        {"text": "Oslo", "entity": "city"},
        {"text": " or "},
        {"text": "Bergen", "entity": "city"},
        {"text": "x", "entity": "not_a_weather_slot"},
    ]
    assert data.weather_fields(pieces) == {"city": "Oslo"}


@pytest.fixture
def registry(scripted):
    _upstream, url = scripted
    return Registry(Config(models=[ModelConfig(name="m", backend="openai", base_url=url)]))


async def test_evaluate_scores_a_classification_run(scripted, registry):
    upstream, _url = scripted
    upstream.enqueue(Script(text="a"), Script(text="b"), Script(text="zzz"))
    task_set = data.TaskSet(
        "toy", {"kind": "classify", "labels": ["a", "b"]}, [], [("x", "a"), ("y", "a"), ("z", "b")]
    )
    upstream.default = Script(text="b")
    row = await bench.evaluate(task_set, "none", "generate", 2, registry)
    assert row.n == 3 and row.score == pytest.approx(2 / 3)
    assert row.valid_first == 2 and row.valid_final == 3  # the third was repaired to "b"
    await registry.aclose()


async def test_evaluate_scores_an_extraction_run(scripted, registry):
    upstream, _url = scripted
    upstream.enqueue(Script(text='{"city": "Oslo", "state": "Viken"}'), Script(text="{}"))
    upstream.default = Script(text="not json")
    schema = {"type": "object", "properties": {"city": {}, "state": {}}}
    items = [("rain in Oslo", {"city": "Oslo"}), ("snow", {"state": "Utah"}), ("q", {})]
    task_set = data.TaskSet("toy", {"kind": "extract", "schema": schema}, [], items)
    row = await bench.evaluate(task_set, "none", "generate", 2, registry)
    assert row.valid_final == 2  # the last item failed twice: a TaskOutputError
    assert row.extra == {"precision": 0.5, "recall": 0.5}
    await registry.aclose()


def test_bound_strings_puts_max_length_in_the_grammar():
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    schema = {"type": "object", "properties": {"city": {"anyOf": [{"type": "string"}]}}}
    bank = [{"input": "a", "output": {"city": "Oslo"}}, {"input": "b", "output": {"city": "Rom"}}]
    task_set = data.TaskSet("toy", {"kind": "extract", "schema": schema}, bank, [])
    bounded = bench.bound_strings(task_set, 3)
    assert bounded.name == "toy (maxLength 3)"
    assert [e["input"] for e in bounded.bank] == ["b"]
    grammar = json_schema_to_gbnf(json.dumps(bounded.spec["schema"]))
    assert "(char (char (char)?)?)?" in grammar
