"""Token counts from upstreams: whole numbers from 0 to MAX_TOKENS, or an UpstreamError (502)
naming the field, for every backend that reads usage from a server."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from smallfirst.config import ModelConfig
from smallfirst.errors import UpstreamError
from smallfirst.models.anthropic import AnthropicProvider
from smallfirst.models.openai import OpenAIProvider
from smallfirst.models.usage import MAX_TOKENS
from smallfirst.testing import BackgroundServer, Script
from smallfirst.types import ChatRequest, Message
from smallfirst.wire.parse import parse_usage

HI = ChatRequest([Message("user", "hi")])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, (0, 0)),
        ({}, (0, 0)),
        ({"prompt_tokens": 7, "completion_tokens": None}, (7, 0)),
        ({"prompt_tokens": 5.0, "completion_tokens": 0}, (5, 0)),
        ({"prompt_tokens": MAX_TOKENS, "completion_tokens": 1}, (MAX_TOKENS, 1)),
    ],
)
def test_valid_counts(raw, expected) -> None:
    usage = parse_usage(raw)
    assert (usage.input_tokens, usage.output_tokens) == expected


@pytest.mark.parametrize(
    "value", [-1, -1_000_000, 1e30, MAX_TOKENS + 1, 2.5, float("inf"), float("nan"), "12", True]
)
def test_invalid_counts_are_upstream_errors_naming_the_field(value) -> None:
    with pytest.raises(UpstreamError, match=r"upstream model 'm' .*usage\.completion_tokens"):
        parse_usage({"prompt_tokens": 1, "completion_tokens": value}, "m")


def test_usage_that_is_not_an_object_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="not an object"):
        parse_usage([1, 2])


async def test_openai_streams_are_checked_too(scripted) -> None:
    upstream, base_url = scripted
    upstream.enqueue(Script(prompt_tokens=-3))
    provider = OpenAIProvider(ModelConfig(name="m", backend="openai", base_url=base_url))
    with pytest.raises(UpstreamError, match=r"usage\.prompt_tokens"):
        async for _delta in provider.stream_chat(HI):
            pass


async def negative_usage(_request) -> JSONResponse:
    return JSONResponse(
        {"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": -9}}
    )


async def test_anthropic_usage_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    app = Starlette(routes=[Route("/v1/messages", negative_usage, methods=["POST"])])
    with BackgroundServer(app) as server:
        provider = AnthropicProvider(
            ModelConfig(name="claude", backend="anthropic", tier="large", base_url=server.url)
        )
        with pytest.raises(UpstreamError, match=r"'claude' .*usage\.input_tokens"):
            await provider.chat(HI)
        await provider.aclose()
