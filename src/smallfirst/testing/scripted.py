"""A scripted OpenAI-compatible server for fault injection.

Each request takes the next `Script` from the queue (or the default one): a reply, an HTTP
error (with Retry-After), a hang, a connection reset, malformed JSON, a slow stream or a stream
that fails after its text went out. Every request received is kept in `received` so tests can
assert what reached the upstream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from smallfirst.types import ToolCall
from smallfirst.wire.render import DONE, ChunkWriter, answer_json, embeddings_json, error_event
from smallfirst.wire.tool_calls import deltas_of

Behaviour = Literal[
    "reply", "error", "hang", "reset", "malformed", "slow_stream", "stream_then_error"
]


@dataclass
class Script:
    behaviour: Behaviour = "reply"
    text: str = "ok"
    status: int = 500
    retry_after: float | None = None
    delay_s: float = 0.0
    """Wait before answering (`reply`), between chunks (`slow_stream`) or forever-ish (`hang`)."""
    prompt_tokens: Any = 5
    """Sent as is: a broken upstream's -1, 1e30 or "abc" tests the gateway's usage checks."""
    completion_tokens: int | None = None
    bill_prompt: Callable[[dict[str, Any]], int] | None = None
    """Bill prompt tokens computed from the request body (instead of `prompt_tokens`)."""
    cached_tokens: int | None = None
    """Reported as `usage.prompt_tokens_details.cached_tokens` (a prompt-caching upstream)."""
    tool_calls: list[ToolCall] | None = None
    """Answer with these calls (finish reason `tool_calls`; streamed one piece per call)."""
    finish_reason: str | None = None
    """Default: `tool_calls` with calls, else `stop`."""
    refusal: str | None = None
    """Sent as the answer message's `refusal` (not streamed)."""


@dataclass
class ScriptedUpstream:
    default: Script = field(default_factory=Script)
    queue: deque[Script] = field(default_factory=deque)
    received: list[dict[str, Any]] = field(default_factory=list)

    def enqueue(self, *scripts: Script) -> None:
        self.queue.extend(scripts)

    def next_script(self) -> Script:
        return self.queue.popleft() if self.queue else self.default

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, _request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = [[float(len(text)), 1.0, 0.0] for text in inputs]
        words = sum(len(text.split()) for text in inputs)
        return JSONResponse(embeddings_json(vectors, body.get("model"), words))

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._answer(request, chat=False)

    async def _answer(self, request: Request, chat: bool) -> Response:
        body = await request.json()
        self.received.append(body)
        script = self.next_script()
        if script.bill_prompt is not None:
            script = replace(script, prompt_tokens=script.bill_prompt(body))
        if script.behaviour == "error":
            headers = (
                {"Retry-After": str(script.retry_after)} if script.retry_after is not None else {}
            )
            error = {"error": {"message": f"scripted {script.status}", "type": "server_error"}}
            return JSONResponse(error, status_code=script.status, headers=headers)
        if script.behaviour == "hang":
            await asyncio.sleep(script.delay_s or 3600)
        if script.behaviour == "reset":
            return StreamingResponse(_reset(), media_type="application/json")
        if script.behaviour == "malformed":
            return Response("{not json", media_type="application/json")
        if script.delay_s and script.behaviour == "reply":
            await asyncio.sleep(script.delay_s)
        model = body.get("model", "scripted")
        if body.get("stream"):
            return StreamingResponse(
                self._chunks(body, script, ChunkWriter("scripted-1", model, chat)),
                media_type="text/event-stream",
            )
        answer = answer_json(
            "scripted-1",
            model,
            script.text,
            chat,
            finish_reason=_finish_reason(script),
            usage=self._usage(script),
            tool_calls=script.tool_calls,
            refusal=script.refusal,
        )
        return Response(orjson.dumps(answer), media_type="application/json")

    def _usage(self, script: Script) -> dict[str, Any]:
        out = script.completion_tokens
        if out is None:
            out = max(1, len(script.text.split()))
        usage: dict[str, Any] = {
            "prompt_tokens": script.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": script.prompt_tokens + out
            if isinstance(script.prompt_tokens, int | float)
            else out,
        }
        if script.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": script.cached_tokens}
        return usage

    async def _chunks(
        self, body: dict[str, Any], script: Script, writer: ChunkWriter
    ) -> AsyncIterator[bytes]:
        words = script.text.split(" ") if script.text or not script.tool_calls else []
        for i, word in enumerate(words):
            if script.behaviour == "slow_stream":
                await asyncio.sleep(script.delay_s)
            yield writer.text(word if i == 0 else " " + word)
        if script.tool_calls:
            yield writer.tool_calls(deltas_of(script.tool_calls))
        if script.behaviour == "stream_then_error":  # the text went out, then the model broke
            yield error_event(
                {"error": {"message": "scripted mid-stream failure", "type": "server_error"}}
            )
            return
        yield writer.finish(_finish_reason(script))
        if (body.get("stream_options") or {}).get("include_usage"):
            yield writer.usage(self._usage(script))
        yield DONE


def _finish_reason(script: Script) -> str:
    return script.finish_reason or ("tool_calls" if script.tool_calls else "stop")


async def _reset():
    """Headers go out, then the connection drops: the client sees a broken response."""
    raise ConnectionResetError("scripted reset")
    yield b""  # pragma: no cover - makes this an async generator
