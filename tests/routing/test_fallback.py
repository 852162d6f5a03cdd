"""Retries, fallbacks, cooldowns and deadlines against real scripted upstream servers."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from smallfirst.errors import (
    InvalidRequestError,
    RateLimitError,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeoutError,
)
from smallfirst.routing.fallback import Deadline, exhausted_error
from smallfirst.routing.hops import HopLog
from smallfirst.testing import BackgroundServer, Script
from smallfirst.types import ChatRequest, GenerationParams, Message
from tests.routing.upstreams import caller_for, registry_for, scripted_models

TIERS = {"a": "small", "b": "small", "c": "large"}


def chat(text: str = "hi", **params) -> ChatRequest:
    return ChatRequest([Message("user", text)], GenerationParams(max_tokens=8, **params))


def kinds(result) -> list[str]:
    return [hop.kind for hop in result.hops]


@pytest.fixture
def abc():
    with scripted_models("a", "b", "c") as (upstreams, urls):
        upstreams["b"].default = Script(text="from b")
        upstreams["c"].default = Script(text="from c")
        yield upstreams, urls


async def test_a_500_is_retried_on_the_same_model(abc):
    upstreams, urls = abc
    upstreams["a"].enqueue(Script("error", status=500))
    caller, sleep = caller_for(registry_for(urls, TIERS))
    result = await caller.call("a", chat())
    assert result.generation.text == "ok"
    assert kinds(result) == ["failure", "answer", "accept"]
    assert result.hops[0].error_status == 502 and "500" in result.hops[0].detail
    assert sleep.waits == [0.01]
    assert len(upstreams["a"].received) == 2 and not upstreams["b"].received


async def test_429_retry_after_is_honoured(abc):
    upstreams, urls = abc
    upstreams["a"].enqueue(Script("error", status=429, retry_after=0.2))
    caller, sleep = caller_for(registry_for(urls, TIERS))
    result = await caller.call("a", chat())
    assert result.model == "a"
    assert sleep.waits == [0.2]
    assert result.hops[0].error_status == 429


async def test_a_long_retry_after_falls_back_instead_of_waiting(abc):
    upstreams, urls = abc
    upstreams["a"].enqueue(Script("error", status=429, retry_after=100))
    caller, sleep = caller_for(registry_for(urls, TIERS))
    result = await caller.call("a", chat())
    assert result.generation.text == "from b"
    assert sleep.waits == []
    assert kinds(result) == ["failure", "fallback", "answer", "accept"]
    assert "moving on" in result.hops[0].detail


@pytest.mark.parametrize("behaviour", ["error", "reset", "malformed"])
async def test_exhausted_retries_fall_back_to_the_same_tier_first(abc, behaviour):
    upstreams, urls = abc
    upstreams["a"].default = Script(behaviour, status=503)
    caller, sleep = caller_for(registry_for(urls, TIERS))
    result = await caller.call("a", chat())
    assert result.model == "b"
    assert len(upstreams["a"].received) == 3  # one try + two retries
    assert not upstreams["c"].received
    assert sleep.waits == [0.01, 0.02]
    assert [h.model for h in result.hops if h.kind == "failure"] == ["a", "a", "a"]


async def test_fallback_climbs_to_a_higher_tier(abc):
    upstreams, urls = abc
    upstreams["a"].default = Script("error", status=500)
    upstreams["b"].default = Script("error", status=502)
    caller, _ = caller_for(registry_for(urls, TIERS, failover={"retries": 0}))
    result = await caller.call("a", chat())
    assert result.generation.text == "from c"
    assert result.hops[-2].model == "c" and result.hops[-2].tier == "large"


async def test_explicit_fallbacks_replace_the_default_order(abc):
    upstreams, urls = abc
    upstreams["a"].default = Script("error", status=500)
    registry = registry_for(urls, TIERS, failover={"retries": 0, "fallbacks": {"a": ["c"]}})
    caller, _ = caller_for(registry)
    assert caller.chain("a") == ["a", "c"]
    assert (await caller.call("a", chat())).model == "c"
    assert not upstreams["b"].received


async def test_a_bad_request_is_not_retried_nor_sent_elsewhere(abc):
    upstreams, urls = abc
    upstreams["a"].enqueue(Script("error", status=400))
    caller, _ = caller_for(registry_for(urls, TIERS))
    with pytest.raises(InvalidRequestError):
        await caller.call("a", chat())
    assert len(upstreams["a"].received) == 1
    assert not upstreams["b"].received and not upstreams["c"].received


async def test_when_every_model_fails_one_error_names_them_all(abc):
    upstreams, urls = abc
    for upstream in upstreams.values():
        upstream.default = Script("error", status=500)
    caller, _ = caller_for(registry_for(urls, TIERS, failover={"retries": 1}))
    with pytest.raises(UpstreamError) as info:
        await caller.call("a", chat(), request_id="req-test")
    message = info.value.message
    assert message.startswith("request req-test: every candidate model failed")
    assert all(f"{name}:" in message for name in "abc")
    assert info.value.status == 502
    assert info.value.to_openai()["error"]["type"] == "upstream_error"


async def test_all_rate_limited_gives_a_429_with_the_shortest_wait(abc):
    upstreams, urls = abc
    for wait, upstream in zip((30, 20, 40), upstreams.values(), strict=True):
        upstream.default = Script("error", status=429, retry_after=wait)
    caller, _ = caller_for(registry_for(urls, TIERS, failover={"retries": 0}))
    with pytest.raises(RateLimitError) as info:
        await caller.call("a", chat())
    assert info.value.retry_after == 20
    assert info.value.headers["Retry-After"] == "20"


async def test_a_hanging_model_times_out_and_falls_back(abc):
    upstreams, urls = abc
    upstreams["a"].default = Script("hang", delay_s=30)
    registry = registry_for(urls, TIERS, failover={"retries": 0}, timeouts={"a": 0.5})
    caller, _ = caller_for(registry)
    result = await caller.call("a", chat())
    assert result.model == "b"
    assert result.hops[0].error_type == "timeout_error"


async def test_the_deadline_bounds_the_whole_request(abc):
    upstreams, urls = abc
    for upstream in upstreams.values():
        upstream.default = Script("hang", delay_s=30)
    caller, _ = caller_for(registry_for(urls, TIERS, failover={"deadline_s": 0.5}))
    with pytest.raises(UpstreamTimeoutError) as info:
        await caller.call("a", chat())
    assert "deadline of 0.5 s" in info.value.message
    assert info.value.status == 504


async def test_an_open_circuit_skips_the_model_until_it_cools_down(abc):
    upstreams, urls = abc
    upstreams["a"].default = Script("error", status=500)
    registry = registry_for(
        urls, TIERS, failover={"retries": 1, "failure_threshold": 2, "cooldown_s": 600}
    )
    caller, _ = caller_for(registry)
    first = await caller.call("a", chat())
    assert first.model == "b" and len(upstreams["a"].received) == 2
    second = await caller.call("a", chat())
    assert second.model == "b"
    assert len(upstreams["a"].received) == 2  # not called while its circuit is open
    assert second.hops[0].outcome == "cooling_down"


async def test_concurrent_requests_each_get_an_answer_or_one_error(abc):
    upstreams, urls = abc
    upstreams["a"].enqueue(
        *[Script("error", status=500), Script("reset"), Script("malformed")] * 5,
        *[Script("error", status=429, retry_after=0.01)] * 5,
    )
    registry = registry_for(urls, TIERS, failover={"failure_threshold": 100})
    caller, _ = caller_for(registry)
    outcomes = await asyncio.gather(
        *(caller.call("a", chat(f"q{i}")) for i in range(40)), return_exceptions=True
    )
    answers = [o for o in outcomes if not isinstance(o, BaseException)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(e, SmallfirstError) for e in errors)
    assert len(answers) + len(errors) == 40
    assert len({a.request_id for a in answers}) == len(answers)
    for answer in answers:
        assert [h.kind for h in answer.hops].count("answer") == 1
        assert answer.hops[-1].kind == "accept"
        assert {h.request_id for h in answer.hops} == {answer.request_id}
    received = sum(len(u.received) for u in upstreams.values())
    hop_calls = sum(
        1
        for a in answers
        for h in a.hops
        if h.kind in ("answer", "failure") and h.outcome != "cooling_down"
    )
    assert received == hop_calls


async def test_a_stream_falls_back_before_its_first_byte(abc):
    upstreams, urls = abc
    upstreams["a"].default = Script("error", status=500)
    upstreams["b"].default = Script("slow_stream", text="one two three", delay_s=0.01)
    caller, _ = caller_for(registry_for(urls, TIERS, failover={"retries": 0}))
    log = HopLog()
    pieces = [
        d.text async for d in caller.stream(chat(), caller.chain("a"), log, Deadline.after(10))
    ]
    assert "".join(pieces) == "one two three"
    assert [h.kind for h in log.hops] == ["failure", "fallback", "answer"]
    assert log.hops[-1].model == "b" and log.hops[-1].output_tokens == 3


def breaks_mid_stream() -> Starlette:
    """A real server whose stream sends one good chunk, then garbage."""

    async def chunks():
        first = {"choices": [{"index": 0, "delta": {"content": "w1"}, "finish_reason": None}]}
        yield f"data: {json.dumps(first)}\n\n"
        yield "data: {broken\n\n"

    async def chat_completions(_request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


async def test_a_stream_that_fails_after_its_first_byte_is_not_replayed(abc):
    upstreams, urls = abc
    with BackgroundServer(breaks_mid_stream()) as broken:
        registry = registry_for({**urls, "a": broken.url + "/v1"}, TIERS)
        caller, _ = caller_for(registry)
        log = HopLog()
        received: list[str] = []
        with pytest.raises(UpstreamError, match="malformed stream chunk"):
            async for delta in caller.stream(chat(), caller.chain("a"), log, Deadline.after(30)):
                received.append(delta.text)
    assert received == ["w1"]
    assert not upstreams["b"].received and not upstreams["c"].received
    assert log.hops[-1].kind == "failure" and "stream already started" in log.hops[-1].detail


def test_exhausted_error_without_candidates_explains_the_cooldown():
    error = exhausted_error("req-x", [])
    assert "cooling down" in error.message and error.status == 502
