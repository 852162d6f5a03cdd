"""Chat and completions through the gateway with the official openai client (sync, async,
streaming), against a real scripted OpenAI-compatible upstream; every request is a ledger row."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from smallfirst.testing import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "Say hi"}]


@pytest.fixture
def gw(scripted):
    upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as running:
        running.upstream = upstream
        yield running


def test_sync_chat_answers_with_model_cost_and_route_headers(gw) -> None:
    gw.upstream.enqueue(Script(text="hello there", prompt_tokens=7, completion_tokens=3))
    raw = gw.client().chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, max_tokens=5, temperature=0.1
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "hello there"
    assert answer.usage.prompt_tokens == 7 and answer.usage.completion_tokens == 3
    assert raw.headers["x-smallfirst-model"] == "small"
    assert raw.headers["x-smallfirst-tier"] == "small"
    assert raw.headers["x-smallfirst-route"] == "direct"
    cost = (7 * 1.0 + 3 * 2.0) / 1e6
    assert float(raw.headers["x-smallfirst-cost-usd"]) == pytest.approx(cost)
    assert float(raw.headers["x-smallfirst-baseline-cost-usd"]) == pytest.approx(
        (7 * 10.0 + 3 * 30.0) / 1e6
    )
    sent = gw.upstream.received[-1]
    assert sent["model"] == "up-small"
    assert sent["max_tokens"] == 5 and sent["temperature"] == 0.1
    [row] = gw.rows()
    assert row["request_id"] == raw.headers["x-smallfirst-request-id"]
    assert (row["kind"], row["hop"], row["endpoint"]) == ("request", 0, "chat")
    assert (row["requested_model"], row["model"], row["tier"]) == ("small", "small", "small")
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (7, 3, 200)
    assert row["cost_usd"] == pytest.approx(cost)
    assert row["baseline_model"] == "large"
    assert row["baseline_cost_usd"] == pytest.approx((7 * 10.0 + 3 * 30.0) / 1e6)
    assert row["response"] == "hello there"
    assert "Say hi" in row["prompt"]
    assert row["latency_ms"] > 0 and row["error"] is None and not row["stream"]


def test_auto_routes_through_the_router_and_says_why(gw) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    assert raw.headers["x-smallfirst-route"] == "auto"
    assert raw.headers["x-smallfirst-model"] == "small"
    assert "default model" in raw.headers["x-smallfirst-route-reason"]
    [row] = gw.rows()
    assert (row["requested_model"], row["router"], row["model"]) == ("auto", "auto", "small")
    assert row["route_reason"] == "no router configured: default model"


def test_extra_openai_fields_pass_through_to_the_upstream(gw) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    gw.client().chat.completions.create(model="large", messages=MESSAGES, tools=tools, user="u1")
    sent = gw.upstream.received[-1]
    assert sent["tools"] == tools and sent["user"] == "u1" and sent["model"] == "up-large"


async def test_async_client_concurrent_requests_each_get_a_row(gw) -> None:
    client = gw.async_client()
    answers = await asyncio.gather(
        *(
            client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=2)
            for _ in range(8)
        )
    )
    await client.close()
    assert all(a.choices[0].message.content == "ok" for a in answers)
    rows = gw.rows()
    assert len(rows) == 8 and len({r["request_id"] for r in rows}) == 8
    assert all(r["status"] == 200 and r["model"] == "small" for r in rows)


def test_stream_with_usage_ends_with_usage_chunk_and_done(gw) -> None:
    gw.upstream.enqueue(Script(text="one two three", prompt_tokens=4))
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={
            "model": "small",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-smallfirst-model"] == "small"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert '"usage"' in lines[-2] and '"choices":[]' in lines[-2].replace(" ", "")
    stream = gw.client().chat.completions.create(
        model="small", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    gw.upstream.enqueue(Script(text="one two three", prompt_tokens=4))
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 1  # the default script ("ok")
    rows = gw.rows()
    assert [r["stream"] for r in rows] == [True, True]
    assert (rows[0]["input_tokens"], rows[0]["output_tokens"]) == (4, 3)
    assert rows[0]["response"] == "one two three"
    assert rows[0]["ttft_ms"] is not None and rows[0]["ttft_ms"] <= rows[0]["latency_ms"]


def test_stream_without_usage_still_records_tokens_but_hides_the_usage_chunk(gw) -> None:
    gw.upstream.enqueue(Script(text="a b", prompt_tokens=6))
    chunks = list(
        gw.client().chat.completions.create(model="small", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b"
    assert all(c.usage is None for c in chunks)
    assert gw.upstream.received[-1]["stream_options"] == {"include_usage": True}
    [row] = gw.rows()
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (6, 2, 200)


def test_completions_plain_and_streamed(gw) -> None:
    client = gw.client()
    gw.upstream.enqueue(Script(text="done", prompt_tokens=2))
    assert client.completions.create(model="small", prompt="x", max_tokens=3).choices[0].text == (
        "done"
    )
    gw.upstream.enqueue(Script(text="p q"))
    pieces = [
        (c.choices[0].text or "")
        for c in client.completions.create(model="large", prompt="y", stream=True)
        if c.choices
    ]
    assert "".join(pieces) == "p q"
    rows = gw.rows()
    assert [(r["endpoint"], r["model"], r["stream"]) for r in rows] == [
        ("completions", "small", False),
        ("completions", "large", True),
    ]
    assert rows[0]["prompt"] == "x"


@pytest.mark.parametrize(
    ("script", "status", "error_type"),
    [
        (Script(behaviour="error", status=500), 502, "upstream_error"),
        (Script(behaviour="error", status=503), 502, "upstream_error"),
        (Script(behaviour="malformed"), 502, "upstream_error"),
        (Script(behaviour="hang", delay_s=5), 504, "timeout_error"),
        (Script(behaviour="error", status=429, retry_after=7), 429, "rate_limit_error"),
    ],
)
def test_upstream_failures_become_openai_errors_and_rows(gw, script, status, error_type) -> None:
    gw.upstream.enqueue(script)
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="small", messages=MESSAGES)
    assert caught.value.status_code == status
    assert caught.value.body["type"] == error_type
    assert caught.value.response.headers["x-smallfirst-model"] == "small"
    [row] = gw.rows()
    assert row["status"] == status and row["error"].startswith(error_type)
    assert row["model"] == "small" and row["cost_usd"] == 0


def test_stream_failing_before_the_first_byte_gets_its_status(gw) -> None:
    gw.upstream.enqueue(Script(behaviour="error", status=500))
    with pytest.raises(openai.APIStatusError) as caught:
        list(gw.client().chat.completions.create(model="small", messages=MESSAGES, stream=True))
    assert caught.value.status_code == 502
    [row] = gw.rows()
    assert row["stream"] and row["status"] == 502


def test_client_leaving_mid_stream_is_recorded(gw) -> None:
    gw.upstream.enqueue(Script(behaviour="slow_stream", text="a b c d e f", delay_s=0.3))
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "small", "messages": MESSAGES, "stream": True},
    ) as response:
        next(response.iter_lines())
    rows = gw.rows()
    for _ in range(100):  # the server notices the disconnect on its next write
        if rows:
            break
        time.sleep(0.05)
        rows = gw.rows()
    [row] = rows
    assert row["status"] == 499 and row["error"].startswith("client_closed")


def test_models_health_and_metrics(gw) -> None:
    ids = [m.id for m in gw.client().models.list()]
    assert ids[:2] == ["small", "large"] and "auto" in ids and "minilm" in ids
    health = httpx.get(gw.url + "/health").json()
    assert health["status"] == "ok" and health["models"] == ["small", "large"]
    gw.client().chat.completions.create(model="small", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        gw.client().chat.completions.create(model="nope", messages=MESSAGES)
    text = httpx.get(gw.url + "/metrics").text
    assert (
        'smallfirst_requests_total{endpoint="chat",model="small",status="200",tier="small"} 1.0'
        in (text)
    )
    assert 'status="404"' in text
    assert 'smallfirst_tokens_total{direction="input",model="small",tier="small"} 5.0' in text
    assert "smallfirst_request_latency_seconds_bucket" in text
    assert 'smallfirst_cost_usd_total{model="small",tier="small"}' in text


def test_embeddings_on_a_configured_openai_compatible_model(gw) -> None:
    result = gw.client().embeddings.create(
        model="small", input=["ab", "abcd"], encoding_format="float"
    )
    assert [item.embedding[0] for item in result.data] == [2.0, 4.0]
    assert gw.upstream.received[-1] == {
        "model": "up-small",
        "input": ["ab", "abcd"],
    }
    [row] = gw.rows()
    assert (row["endpoint"], row["model"], row["status"]) == ("embeddings", "small", 200)
