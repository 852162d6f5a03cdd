"""The Anthropic backend against a real local server speaking the Messages API."""

import json

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from smallfirst.config import ModelConfig
from smallfirst.errors import AuthenticationError, RateLimitError
from smallfirst.models.anthropic import AnthropicProvider, messages_body
from smallfirst.testing import BackgroundServer
from smallfirst.types import ChatRequest, GenerationParams, Message

received: list[dict] = []


async def messages(request):
    body = await request.json()
    received.append({"body": body, "key": request.headers.get("x-api-key")})
    if body["messages"][0]["content"][0]["text"] == "overload":
        return JSONResponse(
            {"type": "error", "error": {"message": "slow down"}}, 429, headers={"retry-after": "3"}
        )
    if body.get("stream"):

        async def events():
            yield 'event: message_start\ndata: {"message": {"usage": {"input_tokens": 9}}}\n\n'
            for word in ("Bonjour", " monde"):
                data = json.dumps({"delta": {"type": "text_delta", "text": word}})
                yield f"event: content_block_delta\ndata: {data}\n\n"
            yield (
                'event: message_delta\ndata: {"delta": {"stop_reason": "end_turn"}, '
                '"usage": {"output_tokens": 2}}\n\n'
            )
            yield "event: message_stop\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    return JSONResponse(
        {
            "content": [{"type": "text", "text": "Bonjour"}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 11, "output_tokens": 1},
        }
    )


@pytest.fixture
def anthropic_url(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
    with BackgroundServer(app) as server:
        yield server.url


def provider(url):
    return AnthropicProvider(
        ModelConfig(name="claude", backend="anthropic", tier="large", base_url=url)
    )


def test_body_moves_system_out_and_merges_turns():
    request = ChatRequest(
        [Message("system", "be brief"), Message("user", "a"), Message("user", "b")],
        GenerationParams(max_tokens=10, stop=["END"]),
    )
    body = messages_body("claude-x", request, stream=False)
    assert body["system"] == "be brief"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert body["stop_sequences"] == ["END"] and body["max_tokens"] == 10


async def test_chat_translates_response(anthropic_url):
    p = provider(anthropic_url)
    result = await p.chat(ChatRequest([Message("user", "hi")]))
    assert result.text == "Bonjour" and result.finish_reason == "length"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (11, 1)
    assert received[-1]["key"] == "ak-test"
    await p.aclose()


async def test_stream_translates_events(anthropic_url):
    p = provider(anthropic_url)
    deltas = [d async for d in p.stream_chat(ChatRequest([Message("user", "hi")]))]
    assert "".join(d.text for d in deltas) == "Bonjour monde"
    assert deltas[-1].usage.input_tokens == 9 and deltas[-1].usage.output_tokens == 2
    await p.aclose()


async def test_rate_limit_maps_to_429(anthropic_url):
    p = provider(anthropic_url)
    with pytest.raises(RateLimitError) as caught:
        await p.chat(ChatRequest([Message("user", "overload")]))
    assert caught.value.retry_after == 3.0 and "slow down" in caught.value.message
    await p.aclose()


async def test_missing_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    p = provider("http://127.0.0.1:9")
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        await p.chat(ChatRequest([Message("user", "hi")]))
