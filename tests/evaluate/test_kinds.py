"""Extract, summarize (with a judge) and answer tasks end to end on real local providers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.evaluate.adapters import build_candidates, load_task
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.evaluation import EvalSettings, evaluate
from smallfirst.models.registry import Registry
from smallfirst.testing import BackgroundServer, ScriptedUpstream
from smallfirst.testing.scripted import Script


def _replay_model(name: str, rows: list[tuple[str, str]], tmp_path: Path) -> ModelConfig:
    path = tmp_path / f"{name}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "answer"])
        writer.writerows(rows)
    return ModelConfig(
        name=name,
        backend="replay",
        price=Price(input=1.0, output=1.0),
        options={"outcomes": str(path)},
    )


async def _evaluate(tmp_path, yaml_text, kind, examples, registry, names, settings):
    (tmp_path / "task.yaml").write_text(yaml_text)
    task = load_task(tmp_path / "task.yaml")
    try:
        return await evaluate(
            "t", kind, build_candidates(task, names, registry), examples, settings, registry
        )
    finally:
        await registry.aclose()


async def test_extract_field_f1_and_schema_validity(tmp_path, scripted):
    upstream, base_url = scripted
    upstream.default = Script(text=json.dumps({"city": "Paris", "day": "Monday"}))
    upstream.enqueue(Script(text="not json"), Script(text="still not json"))  # fails after repair
    model = ModelConfig(name="s", backend="openai", base_url=base_url)
    examples = [
        Example("Meet in Paris on Monday", {"city": "Paris", "day": "Monday"}),
        Example("Rome next Friday", {"city": "Rome", "day": "Friday"}),
        Example("Paris, Sunday", {"city": "Paris", "day": "Sunday"}),
    ]
    yaml_text = (
        "kind: extract\nschema:\n  type: object\n  properties:\n"
        "    city: {type: string}\n    day: {type: string}\nfew_shot: {mode: none}\n"
    )
    settings = EvalSettings(metric="field_f1", threshold=0.5, concurrency=1, resamples=200)
    report = await _evaluate(
        tmp_path, yaml_text, "extract", examples, Registry(Config(models=[model])), ["s"], settings
    )
    metrics = report.results[0].metrics
    # item 0 fails twice (invalid JSON): fn 2; item 1: fp 2 fn 2; item 2: tp 1 fp 1 fn 1
    assert metrics["field_f1"].value == pytest.approx(2 / (2 + 3 + 5))
    assert metrics["schema_valid"].value == pytest.approx(2 / 3)
    assert metrics["exact_match"].value == 0.0
    assert report.results[0].error_count == 1


async def test_summarize_rouge_and_judge(tmp_path):
    docs = [f"Meeting {i}: the team agreed to ship release {i} on Friday." for i in range(4)]
    refs = [f"The team will ship release {i} on Friday." for i in range(4)]
    summarizer = _replay_model("summ", [(d, r) for d, r in zip(docs, refs, strict=True)], tmp_path)
    judge = ScriptedUpstream(default=Script(text="4"))
    with BackgroundServer(judge.app) as server:
        judge_model = ModelConfig(name="judge", backend="openai", base_url=server.url + "/v1")
        registry = Registry(Config(models=[summarizer, judge_model]))
        settings = EvalSettings(metric="judge", threshold=0.7, resamples=200, judge="judge")
        examples = [Example(d, r) for d, r in zip(docs, refs, strict=True)]
        report = await _evaluate(
            tmp_path,
            "kind: summarize\nfew_shot: {mode: none}\n",
            "summarize",
            examples,
            registry,
            ["summ"],
            settings,
        )
    metrics = report.results[0].metrics
    assert metrics["rouge_l"].value == pytest.approx(1.0)
    assert metrics["judge"].value == pytest.approx(0.75)
    assert len(judge.received) == 4
    assert "Reference summary" in judge.received[0]["messages"][-1]["content"]
    assert report.recommendation.winner == "summ"


async def test_answer_exact_match_and_token_f1_with_context(tmp_path):
    rows = [("Who wrote Hamlet?", "Shakespeare [1]"), ("Capital of France?", "The city of Paris")]
    registry = Registry(Config(models=[_replay_model("qa", rows, tmp_path)]))
    examples = [
        Example({"question": q, "context": "Hamlet is by Shakespeare. Paris is in France."}, gold)
        for (q, _), gold in zip(
            rows, [["Shakespeare", "William Shakespeare"], "Paris"], strict=True
        )
    ]
    settings = EvalSettings(metric="token_f1", threshold=0.1, resamples=200)
    report = await _evaluate(
        tmp_path,
        "kind: answer\nfew_shot: {mode: none}\n",
        "answer",
        examples,
        registry,
        ["qa"],
        settings,
    )
    metrics = report.results[0].metrics
    # "Shakespeare [1]" normalises to "shakespeare 1": F1 2/3, no EM; "city of paris": F1 1/2
    assert metrics["exact_match"].value == 0.0
    assert metrics["token_f1"].value == pytest.approx((2 / 3 + 1 / 2) / 2)
