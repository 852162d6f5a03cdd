"""`POST /v1/messages` with the official `anthropic` client against a live gateway, in front of
a real scripted OpenAI-compatible upstream and a real scripted Anthropic server: answers,
streams, tool round trips, images, Anthropic-shaped errors, auth, budgets and ledger rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anthropic
import httpx
import pytest

from smallfirst.config import CapabilitiesConfig, Config, ModelConfig, Price
from smallfirst.testing import BackgroundServer, Script, ScriptedUpstream
from smallfirst.testing.anthropic_scripted import ScriptedAnthropic, text_reply, tool_reply
from smallfirst.types import ToolCall
from tests.server.gateway_helpers import (
    LARGE_PRICE,
    ONE_ATTEMPT,
    SMALL_PRICE,
    RunningGateway,
    running_gateway,
)

CLAUDE_PRICE = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
LABELS = {"kind": "constraint", "labels": ["positive", "negative", "neutral"]}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


@dataclass
class Stack:
    gw: RunningGateway
    openai_up: ScriptedUpstream
    claude_up: ScriptedAnthropic

    def client(self, api_key: str = "unused", **options) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.gw.url, api_key=api_key, max_retries=0, **options)

    def rows(self) -> list[dict]:
        return [r for r in self.gw.rows() if r["kind"] == "request"]


def config(openai_url: str, claude_url: str) -> Config:
    return Config(
        failover=ONE_ATTEMPT,
        cascades={"labels": {"rungs": ["small", "claude"], "checks": [LABELS]}},
        models=[
            ModelConfig(
                name="small",
                backend="openai",
                base_url=openai_url,
                upstream_model="up-small",
                tier="small",
                price=SMALL_PRICE,
                timeout_s=2.0,
                capabilities=CapabilitiesConfig(vision=False),
            ),
            ModelConfig(
                name="large",
                backend="openai",
                base_url=openai_url,
                upstream_model="up-large",
                tier="large",
                price=LARGE_PRICE,
                timeout_s=2.0,
            ),
            ModelConfig(
                name="claude",
                backend="anthropic",
                base_url=claude_url,
                upstream_model="claude-up",
                tier="large",
                price=CLAUDE_PRICE,
                timeout_s=2.0,
            ),
        ],
    )


@contextmanager
def _stack(auth: bool) -> Iterator[Stack]:
    openai_up, claude_up = ScriptedUpstream(), ScriptedAnthropic()
    with (
        pytest.MonkeyPatch.context() as env,
        BackgroundServer(openai_up.app) as openai_server,
        BackgroundServer(claude_up.app) as claude_server,
    ):
        env.setenv("ANTHROPIC_API_KEY", "ak-upstream")
        with running_gateway(config(openai_server.url + "/v1", claude_server.url), auth=auth) as gw:
            yield Stack(gw, openai_up, claude_up)


@pytest.fixture
def stack() -> Iterator[Stack]:
    with _stack(auth=False) as running:
        yield running


@pytest.fixture
def authed() -> Iterator[Stack]:
    with _stack(auth=True) as running:
        yield running


@pytest.fixture(scope="module")
def shared() -> Iterator[Stack]:
    """One gateway for the tests that never reach an upstream (they find their row by id)."""
    with _stack(auth=False) as running:
        yield running


def row_of(stack: Stack, response: httpx.Response) -> dict:
    [row] = [
        r for r in stack.rows() if r["request_id"] == response.headers["x-smallfirst-request-id"]
    ]
    return row


def ask(client: anthropic.Anthropic, stream: bool, **create):
    """One `messages.create`, or the same as a stream collected by the SDK."""
    create.setdefault("max_tokens", 50)
    if not stream:
        return client.messages.create(**create)
    with client.messages.stream(**create) as events:
        return events.get_final_message()


# --- answers and ledger rows -------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_text_answer_is_a_messages_ledger_row(stack, stream) -> None:
    stack.openai_up.enqueue(Script(text="hello there", prompt_tokens=7, completion_tokens=3))
    message = ask(
        stack.client(),
        stream,
        model="small",
        system="Be brief.",
        messages=[{"role": "user", "content": "Say hi"}],
        stop_sequences=["END"],
    )
    assert message.content[0].text == "hello there"
    assert message.stop_reason == "end_turn" and message.model == "small"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 3)
    sent = stack.openai_up.received[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
    ]
    assert sent["max_tokens"] == 50 and sent["stop"] == ["END"]
    [row] = stack.rows()
    assert (row["endpoint"], row["model"], row["status"], bool(row["stream"])) == (
        "messages",
        "small",
        200,
        stream,
    )
    assert (row["input_tokens"], row["output_tokens"]) == (7, 3)
    assert row["cost_usd"] == pytest.approx((7 * 1.0 + 3 * 2.0) / 1e6)
    assert message.id == row["request_id"]
    assert json.loads(row["prompt"]) == sent["messages"] and row["response"] == "hello there"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_cache_tokens_are_counted_and_priced(stack, stream) -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 100,
    }
    stack.claude_up.enqueue(text_reply("ok", usage=usage))
    message = ask(
        stack.client(), stream, model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    got = message.usage
    assert (got.input_tokens, got.output_tokens) == (10, 5)
    assert (got.cache_read_input_tokens, got.cache_creation_input_tokens) == (2000, 100)
    [row] = stack.rows()
    assert row["input_tokens"] == 2110  # every prompt token, cached ones included
    cost = (10 * 3.0 + 2000 * 0.3 + 100 * 3.75 + 5 * 15.0) / 1e6
    assert row["cost_usd"] == pytest.approx(cost)


def test_openai_cached_tokens_are_reported_as_cache_reads(stack) -> None:
    stack.openai_up.enqueue(Script(text="ok", prompt_tokens=900, cached_tokens=800))
    message = stack.client().messages.create(
        model="small", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (100, 800)


def test_auto_is_routed_like_chat(stack) -> None:
    message = stack.client().messages.create(
        model="auto", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    [row] = stack.rows()
    assert row["router"] and row["route_reason"] and row["model"] == message.model


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_climbs_and_charges_every_rung(stack, stream) -> None:
    stack.openai_up.enqueue(Script(text="no idea", prompt_tokens=6, completion_tokens=2))
    stack.claude_up.enqueue(text_reply("positive", usage={"input_tokens": 6, "output_tokens": 1}))
    message = ask(
        stack.client(),
        stream,
        model="cascade-labels",
        messages=[{"role": "user", "content": "Label: great day"}],
    )
    assert (message.content[0].text, message.model) == ("positive", "claude")
    rows = stack.gw.rows()
    [request] = [r for r in rows if r["kind"] == "request"]
    hops = [r for r in rows if r["kind"] == "hop"]
    assert request["endpoint"] == "messages" and request["model"] == "claude"
    assert hops and all(h["request_id"] == request["request_id"] for h in hops)
    both = (6 * 1.0 + 2 * 2.0) / 1e6 + (6 * 3.0 + 1 * 15.0) / 1e6
    assert request["cost_usd"] == pytest.approx(both)


# --- tools -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_to_an_openai_compatible_upstream(stack, stream) -> None:
    call = ToolCall("call_7", "get_weather", '{"city": "Paris"}')
    stack.openai_up.enqueue(
        Script(text="", tool_calls=[call]), Script(text="18C and sunny in Paris.")
    )
    client = stack.client()
    question = {"role": "user", "content": "Weather in Paris?"}
    first = ask(
        client,
        stream,
        model="small",
        messages=[question],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert (use.type, use.id, use.name, use.input) == (
        "tool_use",
        "call_7",
        "get_weather",
        {"city": "Paris"},
    )
    sent = stack.openai_up.received[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == "required"

    final = ask(
        client,
        stream,
        model="small",
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_7", "content": "18C sunny"}
                ],
            },
        ],
    )
    assert final.content[0].text == "18C and sunny in Paris." and final.stop_reason == "end_turn"
    turns = stack.openai_up.received[-1]["messages"]
    assert turns[1]["role"] == "assistant" and turns[1]["tool_calls"][0]["id"] == "call_7"
    assert json.loads(turns[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert turns[2] == {"role": "tool", "content": "18C sunny", "tool_call_id": "call_7"}
    assert [r["status"] for r in stack.rows()] == [200, 200]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_through_the_anthropic_backend(stack, stream) -> None:
    stack.claude_up.enqueue(
        tool_reply("get_weather", {"city": "Oslo"}, "toolu_42"),
        text_reply("Cold in Oslo.", usage={"input_tokens": 30, "output_tokens": 4}),
    )
    client = stack.client()
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = ask(
        client,
        stream,
        model="claude",
        messages=[question],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    [use] = first.content
    assert (use.id, use.name, use.input, first.stop_reason) == (
        "toolu_42",
        "get_weather",
        {"city": "Oslo"},
        "tool_use",
    )
    sent = stack.claude_up.received[-1]
    assert sent["tools"] == [WEATHER]
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert stack.claude_up.keys[-1] == "ak-upstream"
    final = ask(
        client,
        stream,
        model="claude",
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_42",
                        "content": [{"type": "text", "text": "-3C snow"}],
                    }
                ],
            },
        ],
    )
    assert final.content[0].text == "Cold in Oslo."
    assert stack.claude_up.received[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_42",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_42",
                    "content": [{"type": "text", "text": "-3C snow"}],
                }
            ],
        },
    ]
    row = stack.rows()[-1]
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("claude", 30, 4)
    assert row["cost_usd"] == pytest.approx((30 * 3.0 + 4 * 15.0) / 1e6)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_tool_round_trip_through_the_anthropic_backend(stack, stream) -> None:
    """The chat endpoint, answered by the Anthropic backend: calls in OpenAI's shape."""
    stack.claude_up.enqueue(
        tool_reply("get_weather", {"city": "Rome"}, "toolu_5"), text_reply("Warm in Rome.")
    )
    client = stack.gw.client()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    messages = [{"role": "user", "content": "Weather in Rome?"}]

    def chat(**create):
        if not stream:
            answer = client.chat.completions.create(model="claude", **create)
            choice = answer.choices[0]
            return choice.message.content, choice.message.tool_calls, choice.finish_reason
        text, calls, finish = "", {}, None
        for chunk in client.chat.completions.create(model="claude", stream=True, **create):
            for choice in chunk.choices:
                text += choice.delta.content or ""
                for piece in choice.delta.tool_calls or ():
                    call = calls.setdefault(piece.index, {"id": None, "name": "", "arguments": ""})
                    call["id"] = piece.id or call["id"]
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
                finish = choice.finish_reason or finish
        return text, list(calls.values()), finish

    _, calls, finish = chat(messages=messages, tools=tools, tool_choice="required")
    assert finish == "tool_calls" and len(calls) == 1
    call = (
        calls[0]
        if isinstance(calls[0], dict)
        else {
            "id": calls[0].id,
            "name": calls[0].function.name,
            "arguments": calls[0].function.arguments,
        }
    )
    assert (call["id"], call["name"], json.loads(call["arguments"])) == (
        "toolu_5",
        "get_weather",
        {"city": "Rome"},
    )
    assert stack.claude_up.received[-1]["tool_choice"] == {"type": "any"}
    follow = [
        *messages,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "30C"},
    ]
    text, _, finish = chat(messages=follow, tools=tools)
    assert (text, finish) == ("Warm in Rome.", "stop")
    result = stack.claude_up.received[-1]["messages"][2]
    assert result == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_5",
                "content": [{"type": "text", "text": "30C"}],
            }
        ],
    }


# --- images ------------------------------------------------------------------------------


def test_images_arrive_intact_at_the_anthropic_backend(stack) -> None:
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
    stack.client().messages.create(
        model="claude",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Compare."}, IMAGE, url_image],
            }
        ],
    )
    assert stack.claude_up.received[-1]["messages"][0]["content"] == [
        {"type": "text", "text": "Compare."},
        IMAGE,
        url_image,
    ]


def test_images_arrive_intact_at_an_openai_compatible_vision_upstream(stack) -> None:
    stack.client().messages.create(
        model="large",
        max_tokens=10,
        messages=[{"role": "user", "content": [IMAGE, {"type": "text", "text": "What is it?"}]}],
    )
    assert stack.openai_up.received[-1]["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "text", "text": "What is it?"},
    ]


def test_an_image_to_a_text_only_model_is_refused(stack) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        stack.client().messages.create(
            model="small", max_tokens=10, messages=[{"role": "user", "content": [IMAGE]}]
        )
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "vision" in caught.value.body["error"]["message"]
    assert not stack.openai_up.received


# --- errors in Anthropic's shape ---------------------------------------------------------


@pytest.mark.parametrize(
    ("create", "says"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "top_k": 3}, "top_k"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [WEATHER],
                "tool_choice": {"type": "tool", "name": "other"},
            },
            "tool_choice",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "assistant", "content": [IMAGE]}],
            },
            "messages[0].content",
        ),
        (
            {
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "thinking",
        ),
    ],
)
def test_bad_input_is_an_anthropic_400(shared, create, says) -> None:
    response = httpx.post(shared.gw.url + "/v1/messages", json={"model": "small", **create})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert says in body["error"]["message"]
    assert not shared.openai_up.received
    row = row_of(shared, response)
    assert (row["endpoint"], row["status"]) == ("messages", 400)


def test_body_that_is_not_json_is_an_anthropic_400(shared) -> None:
    response = httpx.post(shared.gw.url + "/v1/messages", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert row_of(shared, response)["status"] == 400


def test_unknown_model_is_a_not_found_error(shared) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        shared.client().messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "not_found_error"
    row = row_of(shared, caught.value.response)
    assert (row["requested_model"], row["status"]) == ("nope", 404)


def test_upstream_failure_is_an_api_error(stack) -> None:
    stack.openai_up.enqueue(Script(behaviour="error", status=500))
    with pytest.raises(anthropic.APIStatusError) as caught:
        stack.client().messages.create(
            model="small", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body["error"]["type"] == "api_error"


def test_failure_mid_stream_is_an_error_event_and_charged(stack) -> None:
    stack.openai_up.enqueue(Script(text="one two three", behaviour="stream_then_error"))
    with pytest.raises(anthropic.APIStatusError, match="mid-stream"):
        ask(stack.client(), True, model="small", messages=[{"role": "user", "content": "hi"}])
    [row] = stack.rows()
    assert row["status"] == 502 and row["output_tokens"] >= 3 and row["cost_usd"] > 0


def test_an_anthropic_stream_cut_mid_answer_is_an_error_not_an_answer(stack) -> None:
    stack.claude_up.enqueue(text_reply("a long answer that never ends", cut_after=6))
    with pytest.raises(anthropic.APIStatusError, match="ended the stream early"):
        ask(stack.client(), True, model="claude", messages=[{"role": "user", "content": "hi"}])
    [row] = stack.rows()
    assert row["status"] == 502 and row["output_tokens"] > 0 and row["cost_usd"] > 0


def test_an_abandoned_stream_is_charged_for_what_was_sent(authed) -> None:
    key, secret = authed.gw.create_key("leaver", budget_usd=1.0)
    authed.openai_up.default = Script(
        "slow_stream", text="one two three four five six seven eight", delay_s=0.02
    )
    body = {
        "model": "large",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "count to eight"}],
    }
    headers = {"x-api-key": secret}
    with httpx.stream("POST", authed.gw.url + "/v1/messages", json=body, headers=headers) as up:
        seen = 0
        for line in up.iter_lines():
            seen += line.startswith("data:") and "text_delta" in line
            if seen == 3:
                break
    deadline = time.monotonic() + 10
    while not (rows := [r for r in authed.rows() if r["status"] == 499]):
        assert time.monotonic() < deadline, "the close is noticed"
        time.sleep(0.02)
    [row] = rows
    assert row["endpoint"] == "messages" and row["key_id"] == key.id
    assert row["input_tokens"] > 0 and row["output_tokens"] >= 3 and row["cost_usd"] > 0
    assert authed.gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])


# --- auth and budgets --------------------------------------------------------------------


def test_x_api_key_and_bearer_both_authenticate(authed) -> None:
    key, secret = authed.gw.create_key("team")
    by_header = authed.client(api_key=secret)
    by_bearer = anthropic.Anthropic(base_url=authed.gw.url, auth_token=secret, max_retries=0)
    for client in (by_header, by_bearer):
        client.messages.create(
            model="small", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert [r["key_id"] for r in authed.rows()] == [key.id, key.id]


def test_a_missing_key_names_both_headers(authed) -> None:
    response = httpx.post(
        authed.gw.url + "/v1/messages",
        json={"model": "small", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and "x-api-key" in error["message"]


def test_a_bad_key_is_an_authentication_error(authed) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        authed.client(api_key="sf-wrong").messages.create(
            model="small", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.body["error"]["type"] == "authentication_error"
    [row] = authed.rows()
    assert (row["endpoint"], row["status"]) == ("messages", 401)


def test_budget_is_held_and_spend_settles(authed) -> None:
    # Admission bounds a 20-token answer on claude at ~$0.0003: a $0.0005 budget admits one.
    key, secret = authed.gw.create_key("capped", budget_usd=0.0005)
    authed.claude_up.default = text_reply("ok", usage={"input_tokens": 10, "output_tokens": 10})
    client = authed.client(api_key=secret)
    create = {"model": "claude", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    client.messages.create(**create)
    with pytest.raises(anthropic.RateLimitError) as caught:
        for _ in range(5):
            client.messages.create(**create)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    rows = [r for r in authed.rows() if r["key_id"] == key.id]
    spent = sum(r["cost_usd"] for r in rows)
    assert spent <= 0.0005
    assert authed.gw.gateway.limiter.spent(key.id) == pytest.approx(spent)
    assert rows[-1]["status"] == 429
