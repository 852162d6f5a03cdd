"""The OpenAI-compatible backend against real local HTTP servers."""

import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import (
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from smallfirst.models.openai import OpenAIProvider
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message


def provider_for(base_url: str, **overrides) -> OpenAIProvider:
    return OpenAIProvider(
        ModelConfig(name="up", backend="openai", tier="large", base_url=base_url, **overrides)
    )


def hello(**params) -> ChatRequest:
    return ChatRequest([Message("user", "hello")], GenerationParams(**params))


async def test_chat_roundtrip_sends_openai_body(scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="hi there", prompt_tokens=7, completion_tokens=2))
    provider = provider_for(url, upstream_model="gpt-x")
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    result = await provider.chat(hello(max_tokens=5, json_schema=schema))
    assert result.text == "hi there"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (7, 2)
    sent = upstream.received[-1]
    assert sent["model"] == "gpt-x" and sent["max_tokens"] == 5
    assert sent["response_format"]["json_schema"]["schema"] == schema
    await provider.aclose()


async def test_streaming_collects_text_and_usage(scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="one two three", completion_tokens=3))
    provider = provider_for(url)
    deltas = [d async for d in provider.stream_chat(hello())]
    assert "".join(d.text for d in deltas) == "one two three"
    assert deltas[-1].usage.output_tokens == 3 and deltas[-1].finish_reason == "stop"
    assert upstream.received[-1]["stream_options"] == {"include_usage": True}
    await provider.aclose()


async def test_text_completion(scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="Paris"))
    provider = provider_for(url)
    result = await provider.complete(CompletionRequest("Capital of France:"))
    assert result.text == "Paris"
    assert upstream.received[-1]["prompt"] == "Capital of France:"
    await provider.aclose()


async def test_embeddings(scripted):
    _, url = scripted
    provider = provider_for(url)
    vectors = await provider.embed(["a", "bbb"])
    assert [v[0] for v in vectors] == [1.0, 3.0]
    await provider.aclose()


@pytest.mark.parametrize(
    ("script", "error", "status"),
    [
        (Script("error", status=500), UpstreamError, 502),
        (Script("error", status=503), UpstreamError, 502),
        (Script("error", status=400), InvalidRequestError, 400),
        (Script("malformed"), UpstreamError, 502),
        (Script("reset"), UpstreamError, 502),
    ],
)
async def test_upstream_failures_map_to_clear_errors(scripted, script, error, status):
    upstream, url = scripted
    upstream.enqueue(script)
    provider = provider_for(url)
    with pytest.raises(error) as caught:
        await provider.chat(hello())
    assert caught.value.status == status
    assert "'up'" in caught.value.message
    await provider.aclose()


async def test_429_keeps_retry_after(scripted):
    upstream, url = scripted
    upstream.enqueue(Script("error", status=429, retry_after=7))
    provider = provider_for(url)
    with pytest.raises(RateLimitError) as caught:
        await provider.chat(hello())
    assert caught.value.retry_after == 7.0
    assert caught.value.headers["Retry-After"] == "7"
    await provider.aclose()


async def test_hang_times_out_as_504(scripted):
    upstream, url = scripted
    upstream.enqueue(Script("hang", delay_s=5))
    provider = provider_for(url, timeout_s=0.3)
    with pytest.raises(UpstreamTimeoutError) as caught:
        await provider.chat(hello())
    assert caught.value.status == 504
    await provider.aclose()


async def test_error_inside_stream_is_raised(scripted):
    upstream, url = scripted
    upstream.enqueue(Script("error", status=500))
    provider = provider_for(url)
    with pytest.raises(UpstreamError):
        async for _ in provider.stream_chat(hello()):
            pass
    await provider.aclose()


async def test_unreachable_server_is_502():
    provider = provider_for("http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(UpstreamError) as caught:
        await provider.chat(hello())
    assert caught.value.status == 502 and "unreachable" in caught.value.message
    await provider.aclose()


async def test_missing_api_key_names_the_variable(scripted, monkeypatch):
    _, url = scripted
    monkeypatch.delenv("SF_TEST_KEY", raising=False)
    provider = provider_for(url, api_key_env="SF_TEST_KEY")
    with pytest.raises(AuthenticationError, match="SF_TEST_KEY"):
        await provider.chat(hello())
    await provider.aclose()


async def test_api_key_is_sent_as_bearer(monkeypatch):
    """Against a tiny server that echoes the Authorization header back as the answer."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from smallfirst.testing import BackgroundServer

    async def echo(request):
        auth = request.headers.get("authorization", "")
        return JSONResponse(
            {"choices": [{"message": {"content": auth}, "finish_reason": "stop"}], "usage": {}}
        )

    monkeypatch.setenv("SF_TEST_KEY", "sk-test")
    app = Starlette(routes=[Route("/v1/chat/completions", echo, methods=["POST"])])
    with BackgroundServer(app) as server:
        provider = provider_for(server.url + "/v1", api_key_env="SF_TEST_KEY")
        result = await provider.chat(hello())
        await provider.aclose()
    assert result.text == "Bearer sk-test"


async def test_a_streamed_completion_held_to_json_goes_up_as_chat(scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text='{"a": "b"}'))
    provider = provider_for(url)
    request = CompletionRequest("A JSON object:", GenerationParams(json_object=True))
    deltas = [d async for d in provider.stream_complete(request)]
    assert "".join(d.text for d in deltas) == '{"a": "b"}'
    sent = upstream.received[-1]
    assert sent["messages"] == [{"role": "user", "content": "A JSON object:"}]
    assert sent["response_format"] == {"type": "json_object"} and "prompt" not in sent
    await provider.aclose()
