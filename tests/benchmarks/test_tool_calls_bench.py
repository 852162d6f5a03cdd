"""The tool-call benchmark is code too: its functions come from the train split and its
table counts what it says it counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "tool_calls.py"
spec = importlib.util.spec_from_file_location("bench_tool_calls", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_tool_calls"] = bench
spec.loader.exec_module(bench)


def test_each_intent_is_a_function_whose_parameters_are_its_slots() -> None:
    tools = {tool.name: tool for tool in bench.tools_from_train()}
    assert set(tools) == set(bench.INTENTS)
    weather = tools["GetWeather"].parameters
    assert "city" in weather["properties"] and weather["additionalProperties"] is False


def test_the_table_counts_valid_and_right_calls() -> None:
    outcomes = [
        bench.Outcome("GetWeather", "GetWeather", True, "tool_calls", 1.0),
        bench.Outcome("PlayMusic", "GetWeather", True, "tool_calls", 2.0),
        bench.Outcome("RateBook", "RateBook", False, "length", 3.0),
    ]
    text = bench.table(outcomes)
    assert "| arguments valid, all calls | 0.667" in text
    assert "| arguments valid, finished calls | 1.000" in text
    assert "| function = gold intent | 0.667" in text
