"""Every path gets the failover policy: a direct request, an `auto` request, a batch item and a
pipeline step survive an upstream 503 and a connection reset (real scripted servers), each
retry visible as a hop; a model whose circuit is open is skipped everywhere; a stream falls
back only before its first byte; a fallback never exceeds what the key was admitted for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from smallfirst.batch.processors import ModelProcessor
from smallfirst.config import Config
from smallfirst.ledger import Ledger
from smallfirst.models.base import StreamingProvider
from smallfirst.models.openai import OpenAIProvider
from smallfirst.models.registry import BACKENDS, Registry, register_backend
from smallfirst.pipeline import Pipeline, parse_pipeline
from smallfirst.routing.hops import HopLog
from smallfirst.routing.resilience import failover_caller, failover_scope
from smallfirst.tasks import Task, parse_spec
from smallfirst.testing import Script, ScriptedUpstream
from tests.routing.upstreams import scripted_models
from tests.server.gateway_helpers import RunningGateway, running_gateway

FAULTS = (Script("error", status=503), Script("reset"))
FAILOVER = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0, "failure_threshold": 3}


def config_for(
    urls: dict[str, str], backend: str = "openai", failover: dict[str, Any] | None = None
) -> Config:
    """`small` (cheap) and `large` (pricey), each on its own scripted server."""
    prices = {"small": (1.0, 2.0), "large": (10.0, 30.0)}
    models = [
        {
            "name": name,
            "backend": backend,
            "base_url": url,
            "tier": name,
            "timeout_s": 2.0,
            "price": {"input": prices[name][0], "output": prices[name][1]},
        }
        for name, url in urls.items()
    ]
    return Config.model_validate({"models": models, "failover": {**FAILOVER, **(failover or {})}})


@pytest.fixture
def upstreams() -> Iterator[tuple[dict[str, ScriptedUpstream], dict[str, str]]]:
    with scripted_models("small", "large") as (scripted, urls):
        scripted["small"].default = Script(text="from small")
        scripted["large"].default = Script(text="from large")
        yield scripted, urls


def hop_rows(gw: RunningGateway) -> list[dict[str, Any]]:
    return [row for row in gw.rows() if row["kind"] == "hop"]


def ask(gw: RunningGateway, model: str, **options: Any) -> Any:
    messages = [{"role": "user", "content": "hello"}]
    return gw.client().chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=8, **options
    )


@pytest.mark.parametrize("model", ["small", "auto"])
def test_a_request_survives_a_503_and_a_reset(upstreams, model: str) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(*FAULTS)
    with running_gateway(config_for(urls)) as gw:
        raw = ask(gw, model)
        hops = hop_rows(gw)
        request = [row for row in gw.rows() if row["kind"] == "request"]
    assert raw.parse().choices[0].message.content == "from small"
    assert raw.headers["x-smallfirst-model"] == "small"
    assert len(scripted["small"].received) == 3 and not scripted["large"].received
    assert [(h["step"], h["outcome"], h["model"]) for h in hops] == [
        ("failure", "error", "small"),
        ("failure", "error", "small"),
        ("answer", "ok", "small"),
    ]
    assert "503" in hops[0]["error"] and "unreachable" in hops[1]["error"]
    assert "retrying" in hops[0]["route_reason"]
    assert request[0]["status"] == 200 and request[0]["model"] == "small"


def test_a_batch_item_survives_a_503_and_a_reset(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(*FAULTS)
    registry = Registry(config_for(urls))
    log = HopLog()

    async def run() -> Any:
        with failover_scope(log):
            return await ModelProcessor(registry, "small").process({"input": "hello"})

    done = asyncio.run(run())
    assert done.output["output"] == "from small" and done.model == "small"
    assert [(h.kind, h.model) for h in log.hops] == [
        ("failure", "small"),
        ("failure", "small"),
        ("answer", "small"),
    ]


def test_a_pipeline_step_survives_a_503_and_a_reset(upstreams, tmp_path: Path) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(*FAULTS)
    registry = Registry(config_for(urls))
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    steps = [{"name": "say", "model": "small", "prompt": "Say: {input}"}]
    pipeline = Pipeline(parse_pipeline({"name": "p", "steps": steps}))
    try:
        result = pipeline.run_sync("hello", registry=registry, ledger=ledger)
        ledger.flush()
        hops = [row for row in ledger.store.rows() if row["kind"] == "hop"]
    finally:
        ledger.close()
    assert result.steps["say"].status == "ok" and result.steps["say"].text == "from small"
    retries = [(h["step"], h["outcome"]) for h in hops if h["step"] != "say"]
    assert retries == [("failure", "error"), ("failure", "error"), ("answer", "ok")]


async def open_circuit(registry: Registry, name: str) -> None:
    breaker = failover_caller(registry).breaker
    for _ in range(registry.config.failover.failure_threshold):
        await breaker.record_failure(name)


def test_a_model_whose_circuit_is_open_is_skipped_on_every_path(upstreams) -> None:
    scripted, urls = upstreams
    with running_gateway(config_for(urls)) as gw:
        asyncio.run(open_circuit(gw.gateway.registry, "small"))
        direct, auto = ask(gw, "small"), ask(gw, "auto")
        hops = hop_rows(gw)
    assert direct.headers["x-smallfirst-model"] == auto.headers["x-smallfirst-model"] == "large"
    assert direct.parse().choices[0].message.content == "from large"
    assert ("failure", "cooling_down", "small") in [
        (h["step"], h["outcome"], h["model"]) for h in hops
    ]

    async def offline() -> tuple[Any, Any]:
        registry = Registry(config_for(urls))
        await open_circuit(registry, "small")
        item = await ModelProcessor(registry, "small").process({"input": "hello"})
        steps = [{"name": "say", "model": "small", "prompt": "Say: {input}"}]
        pipeline = Pipeline(parse_pipeline({"name": "p", "steps": steps}))
        result = await pipeline.run("hello", registry=registry)
        await registry.aclose()
        return item, result

    item, result = asyncio.run(offline())
    assert item.model == "large" and item.output["output"] == "from large"
    assert result.steps["say"].text == "from large" and result.steps["say"].model == "large"
    assert not scripted["small"].received  # never called, on any path


def test_a_stream_falls_back_before_its_first_byte_only(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(*[Script("error", status=503)] * 3)
    scripted["large"].default = Script("slow_stream", text="one two three", delay_s=0.0)
    with running_gateway(config_for(urls, failover={"failure_threshold": 5})) as gw:
        stream = ask(gw, "small", stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
        assert text == "one two three" and stream.headers["x-smallfirst-model"] == "large"
        assert [h["step"] for h in hop_rows(gw)] == [
            "failure", "failure", "failure", "fallback", "answer",
        ]  # fmt: skip

        scripted["small"].enqueue(Script("stream_then_error", text="half an"))
        body = {
            "model": "small",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as reply:
            events = list(reply.iter_lines())
    assert any("half" in line for line in events) and any("error" in line for line in events)
    assert len(scripted["large"].received) == 1  # only the first stream fell back


def test_a_fallback_must_fit_the_keys_reservation(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    with running_gateway(config_for(urls), auth=True) as gw:
        _key, secret = gw.create_key("team", budget_usd=1.0)
        with pytest.raises(openai.APIStatusError) as failed:
            gw.client(secret).chat.completions.create(
                model="small", messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
        hops = hop_rows(gw)
    assert failed.value.status_code == 502 and "small" in failed.value.message
    assert not scripted["large"].received  # its worst case exceeds what was reserved
    assert ("failure", "skipped", "large") in [(h["step"], h["outcome"], h["model"]) for h in hops]


class ForwardingBackend(StreamingProvider):
    """A plugin backend (not `OpenAIProvider`, so the gateway runs it as a provider) that
    streams from a real scripted server."""

    def __init__(self, config: Any) -> None:
        self.name = config.name
        self.upstream = OpenAIProvider(config.model_copy(update={"backend": "openai"}))

    def stream_chat(self, request):  # type: ignore[no-untyped-def]
        return self.upstream.stream_chat(request)

    async def aclose(self) -> None:
        await self.upstream.aclose()


@pytest.fixture
def forwarding_backend() -> Iterator[str]:
    register_backend("forwarding", ForwardingBackend)
    yield "forwarding"
    BACKENDS.pop("forwarding", None)


def test_a_provider_backed_request_retries_and_falls_back_too(
    upstreams, forwarding_backend: str
) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(*FAULTS)
    scripted["large"].default = Script("slow_stream", text="from large", delay_s=0.0)
    with running_gateway(config_for(urls, backend=forwarding_backend)) as gw:
        answer = ask(gw, "small")
        scripted["small"].enqueue(*[Script("error", status=503)] * 3)
        stream = ask(gw, "small", stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
        hops = hop_rows(gw)
        requests = [row for row in gw.rows() if row["kind"] == "request"]
    assert answer.parse().choices[0].message.content == "from small"
    assert text == "from large" and requests[-1]["model"] == "large"
    assert [h["step"] for h in hops[:3]] == ["failure", "failure", "answer"]
    assert [h["step"] for h in hops[3:]] == [
        "failure", "failure", "failure", "fallback", "answer",
    ]  # fmt: skip


def test_a_task_survives_a_503_and_a_reset_and_names_the_model_that_answered(upstreams):
    scripted, urls = upstreams
    task = Task(parse_spec({"name": "gist", "kind": "summarize", "style": "one_sentence"}))

    async def run() -> tuple[Any, Any, HopLog]:
        registry = Registry(config_for(urls))
        log = HopLog()
        scripted["small"].enqueue(*FAULTS)
        with failover_scope(log):
            retried = await task.run("a long text", model="small", registry=registry)
        await open_circuit(registry, "small")
        skipped = await task.run("a long text", model="small", registry=registry)
        await registry.aclose()
        return retried, skipped, log

    retried, skipped, log = asyncio.run(run())
    assert retried.model == "small" and [h.kind for h in log.hops] == [
        "failure",
        "failure",
        "answer",
    ]
    assert skipped.model == "large" and skipped.tries[-1].model == "large"
    assert len(scripted["small"].received) == 3  # the open circuit kept it from the second
