"""Answers in Anthropic's Messages API shape: the message object, its stream events, errors.

Our `Usage.input_tokens` counts every prompt token; Anthropic's `input_tokens` leaves out the
cache reads and writes, which it reports beside it, so they are taken out here.
"""

from __future__ import annotations

from typing import Any

import orjson

from smallfirst.errors import SmallfirstError, UpstreamError
from smallfirst.types import Delta, Generation, ToolCall, Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""OpenAI's `finish_reason` as Anthropic's `stop_reason`."""
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def usage_json(usage: Usage) -> dict[str, int]:
    cached, written = usage.cached_input_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - cached - written),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def tool_input(call: ToolCall, model: str) -> dict[str, Any]:
    """A call's arguments as the JSON object a `tool_use` block carries."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(
            f"model {model!r} called {call.name!r} with arguments that are not a JSON object"
        )
    return value


def message_json(generation: Generation, request_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if generation.text:
        content.append({"type": "text", "text": generation.text})
    for call in generation.tool_calls or ():
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call, generation.model),
            }
        )
    return {
        "id": request_id,
        "type": "message",
        "role": "assistant",
        "model": generation.model,
        "content": content,
        "stop_reason": stop_reason(generation.finish_reason),
        "stop_sequence": None,
        "usage": usage_json(generation.usage),
    }


def error_json(error: SmallfirstError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(
        error.status, "api_error" if error.status >= 500 else "invalid_request_error"
    )
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


class EventWriter:
    """The events of one streamed answer. Text and each tool call are content blocks, opened
    as they start and closed when the next one starts or the answer ends; OpenAI-shaped call
    pieces (index, then id and name, then argument text) map onto `tool_use` blocks with
    `input_json_delta` pieces."""

    def __init__(self, request_id: str, model: str) -> None:
        self.request_id = request_id
        self.model = model
        self._open: tuple[str, int] | None = None
        """("text", -1) or ("tool", call index) for the block now open."""
        self._blocks = 0
        self._tool_blocks: dict[int, int] = {}

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.request_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_json(Usage()),
        }
        return event("message_start", {"message": message})

    def delta(self, delta: Delta) -> bytes:
        out = b""
        if delta.text:
            if self._open != ("text", -1):
                out += self._begin(("text", -1), {"type": "text", "text": ""})
            text = {"type": "text_delta", "text": delta.text}
            out += event("content_block_delta", {"index": self._blocks - 1, "delta": text})
        for piece in delta.tool_calls or ():
            if piece.index not in self._tool_blocks:
                block = {
                    "type": "tool_use",
                    "id": piece.id or "",
                    "name": piece.name or "",
                    "input": {},
                }
                out += self._begin(("tool", piece.index), block)
                self._tool_blocks[piece.index] = self._blocks - 1
            if piece.arguments:
                partial = {"type": "input_json_delta", "partial_json": piece.arguments}
                index = self._tool_blocks[piece.index]
                out += event("content_block_delta", {"index": index, "delta": partial})
        return out

    def finish(self, finish_reason: str | None, usage: Usage) -> bytes:
        out = self._close()
        delta = {"stop_reason": stop_reason(finish_reason), "stop_sequence": None}
        out += event("message_delta", {"delta": delta, "usage": usage_json(usage)})
        return out + event("message_stop", {})

    def error(self, error: SmallfirstError) -> bytes:
        return event("error", {"error": error_json(error)["error"]})

    def _begin(self, which: tuple[str, int], block: dict[str, Any]) -> bytes:
        out = self._close()
        self._open = which
        out += event("content_block_start", {"index": self._blocks, "content_block": block})
        self._blocks += 1
        return out

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        return event("content_block_stop", {"index": self._blocks - 1})
