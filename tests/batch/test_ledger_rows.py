"""A batch item is in the ledger like a chat request: a request row, and a hop row per retry,
fallback, rung and check made on its way (real scripted upstreams, one per model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.cli import app
from smallfirst.config import Config
from smallfirst.ledger import Ledger
from smallfirst.models.registry import Registry
from smallfirst.testing import Script, ScriptedUpstream
from tests.batch.conftest import read_jsonl, write_jsonl
from tests.routing.upstreams import scripted_models

PRICES = {"small": (1.0, 2.0), "large": (10.0, 30.0)}
ANSWER = Script(text="positive", prompt_tokens=100, completion_tokens=4)
LARGE_COST = (100 * 10.0 + 4 * 30.0) / 1e6
SPEC = "kind: classify\nname: sentiment\nlabels: [negative, positive]\n"
FAILED_OVER = [
    ("failure", "error", "small"),
    ("fallback", "next_model", "large"),
    ("answer", "ok", "large"),
]

Upstreams = tuple[dict[str, ScriptedUpstream], dict[str, str]]


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with scripted_models("small", "large") as (scripted, urls):
        for upstream in scripted.values():
            upstream.default = ANSWER
        yield scripted, urls


def config_for(urls: dict[str, str]) -> dict[str, Any]:
    """`small` falls back to `large` at once (no retry on the same model)."""
    models = [
        {
            "name": name,
            "backend": "openai",
            "base_url": url,
            "tier": name,
            "timeout_s": 2.0,
            "price": {"input": PRICES[name][0], "output": PRICES[name][1]},
        }
        for name, url in urls.items()
    ]
    failover = {"retries": 0, "backoff_s": 0.0, "fallbacks": {"small": ["large"]}}
    return {"models": models, "default_model": "small", "failover": failover}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


def split(ledger: Ledger) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ledger.flush()
    rows = ledger.store.rows()
    return [r for r in rows if r["kind"] == "request"], [r for r in rows if r["kind"] == "hop"]


def steps(hops: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(h["step"], h["outcome"], h["model"]) for h in hops]


async def run_one(upstreams: Upstreams, ledger: Ledger, tmp_path: Path, **work: Any) -> Any:
    _scripted, urls = upstreams
    registry = Registry(Config.model_validate(config_for(urls)))
    processor = WorkSpec(**work).build(registry, ledger=ledger)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "I love it"}])
    out = tmp_path / "out.jsonl"
    summary = await run_batch(processor, BatchOptions(source, out))
    return summary, read_jsonl(out) if out.exists() else []


async def test_a_model_item_that_fails_over_leaves_a_hop_row_per_attempt(
    upstreams: Upstreams, ledger: Ledger, tmp_path: Path
) -> None:
    scripted, _urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    summary, [row] = await run_one(upstreams, ledger, tmp_path, model="small")
    [request], hops = split(ledger)
    assert summary.done == 1 and row["output"] == "positive" and row["model"] == "large"
    assert steps(hops) == FAILED_OVER
    assert "503" in hops[0]["error"]
    assert all(h["request_id"] == request["request_id"] for h in hops)
    assert (request["endpoint"], request["requested_model"]) == ("batch", "small")
    assert (request["model"], request["tier"], request["status"]) == ("large", "large", 200)
    assert (request["input_tokens"], request["output_tokens"]) == (100, 4)
    assert request["cost_usd"] == pytest.approx(LARGE_COST) == row["cost_usd"]


async def test_a_task_item_that_fails_over_leaves_a_hop_row_per_attempt(
    upstreams: Upstreams, ledger: Ledger, tmp_path: Path
) -> None:
    scripted, _urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    (tmp_path / "sentiment.yaml").write_text(SPEC)
    task = str(tmp_path / "sentiment.yaml")
    summary, [row] = await run_one(upstreams, ledger, tmp_path, model="small", task=task)
    [request], hops = split(ledger)
    assert summary.done == 1 and row["label"] == "positive" and row["model"] == "large"
    assert steps(hops) == FAILED_OVER
    assert (request["endpoint"], request["model"], request["status"]) == ("batch", "large", 200)
    assert request["cost_usd"] == pytest.approx(LARGE_COST) == row["cost_usd"]


async def test_an_item_no_model_answered_is_a_failed_row_with_its_hops(
    upstreams: Upstreams, ledger: Ledger, tmp_path: Path
) -> None:
    scripted, _urls = upstreams
    for upstream in scripted.values():
        upstream.enqueue(Script("error", status=503))
    summary, rows = await run_one(upstreams, ledger, tmp_path, model="small")
    [request], hops = split(ledger)
    assert summary.failed == 1 and not rows  # not journaled: a rerun retries it
    assert steps(hops) == [
        ("failure", "error", "small"),
        ("fallback", "next_model", "large"),
        ("failure", "error", "large"),
    ]
    assert request["status"] == 502 and "every candidate model failed" in request["error"]
    assert request["cost_usd"] == 0


def test_smallfirst_batch_records_its_items_in_the_ledger(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    config = tmp_path / "smallfirst.yaml"
    config.write_text(json.dumps(config_for(urls)))  # JSON is YAML
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "I love it"}])
    url = f"sqlite:///{tmp_path / 'cli-ledger.db'}"
    command = ["--config", str(config), "batch", str(source), "--out", str(tmp_path / "o.jsonl")]
    done = CliRunner().invoke(app, [*command, "--model", "small", "--ledger", url])
    assert done.exit_code == 0, done.output
    ledger = Ledger(url)
    try:
        [request], hops = split(ledger)
    finally:
        ledger.close()
    assert steps(hops) == FAILED_OVER
    assert request["endpoint"] == "batch" and request["cost_usd"] == pytest.approx(LARGE_COST)


async def test_a_pipeline_item_is_recorded_by_its_pipeline_with_the_retries(
    upstreams: Upstreams, ledger: Ledger, tmp_path: Path
) -> None:
    scripted, _urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    steps_spec = [{"name": "say", "model": "small", "prompt": "Say: {input}"}]
    (tmp_path / "p.yaml").write_text(json.dumps({"name": "p", "steps": steps_spec}))
    pipeline = str(tmp_path / "p.yaml")
    summary, [row] = await run_one(upstreams, ledger, tmp_path, pipeline=pipeline)
    [request], hops = split(ledger)
    assert summary.done == 1 and row["steps"]["say"]["model"] == "large"
    assert (request["endpoint"], request["requested_model"]) == ("pipeline", "pipeline:p")
    assert [h for h in steps(hops) if h[0] != "say"] == FAILED_OVER
