"""One place resolves a name: models, `default`, routers and cascades become targets whose
answers carry the model that gave them and every hop on the way (real scripted upstreams)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from smallfirst.config import Config
from smallfirst.errors import InvalidRequestError, ModelNotFoundError, UpstreamError
from smallfirst.models.registry import Registry
from smallfirst.routing.hops import HopLog
from smallfirst.target import (
    CascadeTarget,
    ModelTarget,
    RouterTarget,
    Targets,
    one_model_route,
)
from smallfirst.testing import Script, ScriptedUpstream
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message
from tests.routing.upstreams import scripted_models

FAILOVER = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0, "failure_threshold": 5}
HELLO = ChatRequest([Message("user", "hello")], GenerationParams(max_tokens=8))


def config_for(urls: dict[str, str], **extra: Any) -> Config:
    prices = {"small": (1.0, 2.0), "large": (10.0, 30.0)}
    models = [
        {
            "name": name,
            "backend": "openai",
            "base_url": url,
            "tier": name,
            "timeout_s": 2.0,
            "price": {"input": prices[name][0], "output": prices[name][1]},
        }
        for name, url in urls.items()
    ]
    return Config.model_validate({"models": models, "failover": FAILOVER, **extra})


@pytest.fixture
def upstreams() -> Iterator[tuple[dict[str, ScriptedUpstream], dict[str, str]]]:
    with scripted_models("small", "large") as (scripted, urls):
        scripted["small"].default = Script(text="from small", prompt_tokens=5, completion_tokens=2)
        scripted["large"].default = Script(text="from large", prompt_tokens=5, completion_tokens=2)
        yield scripted, urls


def test_each_kind_of_name_resolves_once(upstreams) -> None:
    _, urls = upstreams
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    targets = Targets(Registry(config))
    assert isinstance(targets.resolve("small"), ModelTarget)
    default = targets.resolve("default")
    assert isinstance(default, ModelTarget) and default.name == "default"
    assert default.entry.name == "small"  # the first model is the default
    assert isinstance(targets.resolve("auto"), RouterTarget)
    assert isinstance(targets.resolve("cascade-ladder"), CascadeTarget)
    assert targets.resolve("auto") is targets.resolve("auto")  # kept, not rebuilt


def test_an_unknown_name_lists_every_name_that_works(upstreams) -> None:
    _, urls = upstreams
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    with pytest.raises(ModelNotFoundError) as err:
        Targets(Registry(config)).resolve("smal")
    message = err.value.message
    assert "'smal' does not exist" in message
    assert "small, large" in message and "auto" in message and "cascade-ladder" in message


def test_a_model_answer_survives_a_503_and_a_reset_with_the_retries_as_hops(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503), Script("reset"))
    target = Targets(Registry(config_for(urls))).resolve("small")
    answer = target.generate_sync(HELLO)
    assert (answer.text, answer.model) == ("from small", "small")
    assert [(h.kind, h.outcome) for h in answer.hops] == [
        ("failure", "error"),
        ("failure", "error"),
        ("answer", "ok"),
    ]
    assert answer.cost_usd == pytest.approx((5 * 1.0 + 2 * 2.0) / 1e6)


def test_a_fallback_is_priced_and_named_as_the_model_that_answered(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    target = Targets(Registry(config_for(urls))).resolve("small")
    told: list[str] = []
    answer = target.generate_sync(HELLO, on_model=told.append)
    assert (answer.model, told) == ("large", ["large"])
    assert answer.cost_usd == pytest.approx((5 * 10.0 + 2 * 30.0) / 1e6)


def test_a_fallback_the_caller_disallows_is_not_tried(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    target = Targets(Registry(config_for(urls))).resolve("small")
    log = HopLog()
    with pytest.raises(UpstreamError, match="every candidate model failed"):
        target.generate_sync(HELLO, log=log, allow=lambda name: name != "large")
    assert not scripted["large"].received
    assert [(h.model, h.outcome) for h in log.hops] == [
        ("small", "error"),
        ("small", "error"),
        ("small", "error"),
        ("large", "skipped"),
    ]


def test_auto_without_a_router_names_its_reason(upstreams) -> None:
    _, urls = upstreams
    target = Targets(Registry(config_for(urls))).resolve("auto")
    route = target.route(HELLO)
    assert route.model.name == "small" and route.decision is not None
    assert route.decision.reason == "no router configured: default model"
    answer = target.generate_sync(HELLO)
    assert answer.route.decision is route.decision or answer.route.decision == route.decision


def test_completions_and_streams_go_the_same_way(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    target = Targets(Registry(config_for(urls))).resolve("small")
    completion = target.generate_sync(CompletionRequest("say hi", GenerationParams(max_tokens=4)))
    assert completion.text == "from small"
    deltas = list(target.stream_sync(HELLO))
    assert "".join(d.text for d in deltas if d.text) == "from small"
    assert deltas[-1].usage is not None and deltas[-1].usage.output_tokens == 2


def test_a_cascade_climbs_and_charges_every_rung(upstreams) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script(text="maybe", prompt_tokens=5, completion_tokens=2)
    checks = [{"kind": "constraint", "labels": ["yes", "no"]}]
    scripted["large"].default = Script(text="yes", prompt_tokens=5, completion_tokens=2)
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"], "checks": checks}})
    target = Targets(Registry(config)).resolve("cascade-ladder")
    answer = asyncio.run(target.generate(HELLO))
    assert (answer.text, answer.model, answer.escalations) == ("yes", "large", 1)
    small, large = (5 * 1.0 + 2 * 2.0) / 1e6, (5 * 10.0 + 2 * 30.0) / 1e6
    assert answer.cost_usd == pytest.approx(small + large)
    assert answer.route.decision is not None
    assert answer.route.decision.reason == "kept on large after 1 escalation(s)"


def test_callers_that_build_their_own_prompt_refuse_a_cascade(upstreams) -> None:
    _, urls = upstreams
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    with pytest.raises(InvalidRequestError, match="is a cascade; a task runs on"):
        one_model_route("cascade-ladder", Registry(config), HELLO, "a task")
    assert one_model_route("auto", Registry(config), HELLO, "a task").model.name == "small"


def test_auto_sends_a_prompt_too_long_for_the_small_model_to_one_that_fits(upstreams) -> None:
    _, urls = upstreams
    config = config_for(urls)
    config.models[0].context = 64  # small: 64 tokens of prompt plus answer
    target = Targets(Registry(config)).resolve("auto")
    long = ChatRequest([Message("user", "word " * 200)], GenerationParams(max_tokens=8))
    route = target.route(long)
    assert route.model.name == "large" and route.decision is not None
    assert "small's context (64) < ~" in route.decision.reason
    assert target.route(HELLO).model.name == "small"


def test_no_model_with_the_capability_is_a_400_naming_it(upstreams) -> None:
    _, urls = upstreams
    config = config_for(urls)
    for model in config.models:
        model.capabilities.vision = False
    image = Message.from_openai(
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        }
    )
    with pytest.raises(InvalidRequestError) as err:
        Targets(Registry(config)).resolve("auto").route(ChatRequest([image]))
    assert err.value.param == "messages[0].content[0]"
    assert "small lacks vision" in err.value.message and "large lacks vision" in err.value.message
