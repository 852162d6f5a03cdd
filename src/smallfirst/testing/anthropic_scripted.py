"""A scripted server speaking Anthropic's Messages API (`POST /v1/messages`), for tests.

Each request takes the next `AnthropicReply` from the queue (or the default): content blocks
(text and `tool_use`), a stop reason and usage, or an HTTP error in Anthropic's error shape.
Streams are written event by event as Anthropic writes them (message_start, content blocks
with text_delta / input_json_delta pieces, message_delta, message_stop), independently of the
gateway's own renderer, so a test compares two implementations of the format, not one with
itself. Every request body and its `x-api-key` are kept in `received`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class AnthropicReply:
    content: list[dict[str, Any]] = field(default_factory=lambda: [{"type": "text", "text": "ok"}])
    stop_reason: str = "end_turn"
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 5, "output_tokens": 1})
    status: int = 200
    """Not 200: answer this status with an Anthropic error body instead."""
    error_type: str = "api_error"
    piece_chars: int = 4
    """A stream splits text and tool input JSON into pieces this long."""
    cut_after: int | None = None
    """Stream only this many events, then end the response (a connection cut mid-answer)."""


def text_reply(text: str, **options: Any) -> AnthropicReply:
    return AnthropicReply(content=[{"type": "text", "text": text}], **options)


def tool_reply(
    name: str, arguments: dict[str, Any], call_id: str = "toolu_01", **options: Any
) -> AnthropicReply:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
    return AnthropicReply(content=[block], stop_reason="tool_use", **options)


@dataclass
class ScriptedAnthropic:
    default: AnthropicReply = field(default_factory=AnthropicReply)
    queue: deque[AnthropicReply] = field(default_factory=deque)
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)

    def enqueue(self, *replies: AnthropicReply) -> None:
        self.queue.extend(replies)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(body)
        self.keys.append(request.headers.get("x-api-key"))
        reply = self.queue.popleft() if self.queue else self.default
        if reply.status != 200:
            error = {"type": "error", "error": {"type": reply.error_type, "message": "scripted"}}
            return JSONResponse(error, status_code=reply.status)
        message = {
            "id": f"msg_scripted_{len(self.received)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": reply.content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": reply.usage,
        }
        if body.get("stream"):
            events = _events(message, reply)
            if reply.cut_after is not None:
                events = _first(events, reply.cut_after)
            return StreamingResponse(events, media_type="text/event-stream")
        return Response(orjson.dumps(message), media_type="application/json")


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def _events(message: dict[str, Any], reply: AnthropicReply) -> AsyncIterator[bytes]:
    usage = dict(reply.usage)
    output = usage.pop("output_tokens", 0)
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield _event("message_start", {"message": start})
    yield b'event: ping\ndata: {"type": "ping"}\n\n'
    for index, block in enumerate(reply.content):
        opened: dict[str, Any]
        if block["type"] == "text":
            opened, whole = {"type": "text", "text": ""}, block["text"]
            piece = {"type": "text_delta", "text": ""}
        else:
            opened, whole = {**block, "input": {}}, orjson.dumps(block["input"]).decode()
            piece = {"type": "input_json_delta", "partial_json": ""}
        key = "text" if block["type"] == "text" else "partial_json"
        yield _event("content_block_start", {"index": index, "content_block": opened})
        for part in _pieces(whole, reply.piece_chars):
            yield _event("content_block_delta", {"index": index, "delta": {**piece, key: part}})
        yield _event("content_block_stop", {"index": index})
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": None}
    yield _event("message_delta", {"delta": delta, "usage": {"output_tokens": output}})
    yield _event("message_stop", {})


async def _first(events: AsyncIterator[bytes], count: int) -> AsyncIterator[bytes]:
    sent = 0
    async for event in events:
        if sent == count:
            return
        yield event
        sent += 1
