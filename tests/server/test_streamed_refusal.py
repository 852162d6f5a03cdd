"""A refusal streamed as `delta.refusal` by an upstream survives every provider-built stream:
the OpenAI-compatible provider's deltas, a cascade's replayed stream and a Responses stream
(official openai SDK, live gateway, real local upstreams)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from smallfirst.config import CascadeConfig, ModelConfig
from smallfirst.models.base import collect
from smallfirst.models.openai import OpenAIProvider
from smallfirst.testing import BackgroundServer, Script
from smallfirst.types import ChatRequest, Message
from tests.server.gateway_helpers import running_gateway, scripted_config

pytestmark = pytest.mark.slow

REFUSAL = "I can't help with that."
ASK = [{"role": "user", "content": "How do I pick a lock?"}]


def refusing() -> Starlette:
    """An upstream that streams its refusal in two `delta.refusal` pieces."""

    async def chat(request: Request) -> StreamingResponse:
        await request.json()

        def event(delta: dict, finish: str | None = None, **extra: object) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return b"data: " + orjson.dumps({"choices": [choice], **extra}) + b"\n\n"

        async def events() -> AsyncIterator[bytes]:
            yield event({"role": "assistant", "content": None})
            yield event({"refusal": REFUSAL[:8]})
            yield event({"refusal": REFUSAL[8:]})
            usage = {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
            yield event({}, "stop", usage=usage)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_the_openai_provider_streams_and_collects_the_refusal() -> None:
    with BackgroundServer(refusing()) as server:
        provider = OpenAIProvider(
            ModelConfig(name="up", backend="openai", base_url=server.url + "/v1")
        )
        request = ChatRequest([Message("user", "How do I pick a lock?")])
        deltas = [d async for d in provider.stream_chat(request)]
        assert "".join(d.refusal for d in deltas) == REFUSAL
        answer = await collect("up", provider.stream_chat(request))
        await provider.aclose()
    assert answer.refusal == REFUSAL and answer.text == ""


def test_a_responses_stream_ends_with_the_refusal_part() -> None:
    upstream = BackgroundServer(refusing())
    with upstream as server, running_gateway(scripted_config(server.url + "/v1")) as gw:
        stream = gw.client().responses.create(
            model="small", input="How do I pick a lock?", stream=True
        )
        events = list(stream)
    done = [e for e in events if e.type == "response.completed"]
    (message,) = done[0].response.output
    assert [(p.type, getattr(p, "refusal", None)) for p in message.content] == [
        ("refusal", REFUSAL)
    ]


def test_a_cascade_stream_replays_the_refusal(scripted) -> None:
    upstream, base_url = scripted
    upstream.default = Script(text="", refusal=REFUSAL)
    config = scripted_config(base_url)
    config.cascades["ladder"] = CascadeConfig(rungs=["small"])
    with running_gateway(config) as gw:
        chunks = list(
            gw.client().chat.completions.create(model="cascade-ladder", messages=ASK, stream=True)
        )
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == REFUSAL
