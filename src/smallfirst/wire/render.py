"""OpenAI answers as bytes: the JSON answer, its stream chunks, the final `[DONE]`.

The gateway renders answers from non-OpenAI backends (embedded, Anthropic, ...) with it, and
the test servers (scripted, replay) render theirs, so every OpenAI answer we write has one shape.
Stream chunks are written from a pre-encoded prefix plus the JSON-encoded text, so a streamed
token costs one small `orjson.dumps` of a string and no per-token objects.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from smallfirst.types import Generation, TokenLogprob, ToolCall, ToolCallDelta, Usage
from smallfirst.wire.tool_calls import tool_call_deltas_json

DONE = b"data: [DONE]\n\n"


def usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_input_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    return out


def logprobs_json(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if not items:
        return None
    return {
        "content": [
            {
                "token": item.token,
                "logprob": item.logprob,
                "top_logprobs": [
                    {"token": token, "logprob": value} for token, value in (item.top or {}).items()
                ],
            }
            for item in items
        ]
    }


def completion_json(generation: Generation, request_id: str, chat: bool) -> dict[str, Any]:
    return answer_json(
        request_id,
        generation.model,
        generation.text,
        chat,
        finish_reason=generation.finish_reason,
        usage=usage_json(generation.usage),
        logprobs=generation.logprobs,
        tool_calls=generation.tool_calls,
        refusal=generation.refusal,
    )


def answer_json(
    request_id: str,
    model: str,
    text: str,
    chat: bool,
    *,
    finish_reason: str = "stop",
    usage: Mapping[str, Any],
    logprobs: list[TokenLogprob] | None = None,
    tool_calls: list[ToolCall] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A whole answer; `usage` goes out as given (a test server may send broken counts)."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason}
    if chat:
        content = text if text or not tool_calls else None  # OpenAI: null beside calls
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = [call.to_openai() for call in tool_calls]
        if refusal is not None:
            message["refusal"] = refusal
        choice["message"] = message
        choice["logprobs"] = logprobs_json(logprobs)
    else:
        choice["text"] = text
        choice["logprobs"] = _completion_logprobs(logprobs)
    return {
        "id": request_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": dict(usage),
    }


def embeddings_json(vectors: list[Any], model: str | None, prompt_tokens: int) -> dict[str, Any]:
    """`vectors`: each a list of floats, or a base64 string (`encoding_format: base64`)."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _completion_logprobs(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if not items:
        return None
    return {
        "tokens": [item.token for item in items],
        "token_logprobs": [item.logprob for item in items],
        "top_logprobs": [item.top for item in items],
    }


class ChunkWriter:
    """SSE events for one streamed answer, in the chat or the legacy completions shape."""

    def __init__(self, request_id: str, model: str, chat: bool) -> None:
        self.chat = chat
        head = {
            "id": request_id,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        self._head = orjson.dumps(head)[:-1]  # without the closing brace
        if chat:
            self._text_prefix = (
                b"data: " + self._head + b',"choices":[{"index":0,"delta":{"content":'
            )
            self._text_suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        else:
            self._text_prefix = b"data: " + self._head + b',"choices":[{"index":0,"text":'
            self._text_suffix = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        delta = {"role": "assistant", "content": ""}
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def text(self, text: str) -> bytes:
        return self._text_prefix + orjson.dumps(text) + self._text_suffix

    def tool_calls(self, pieces: list[ToolCallDelta]) -> bytes:
        delta = {"tool_calls": tool_call_deltas_json(pieces)}
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def refusal(self, text: str) -> bytes:
        """A piece of a chat answer's refusal, as OpenAI streams it."""
        delta = {"refusal": text}
        return self._event([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def finish(self, reason: str) -> bytes:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        if self.chat:
            choice["delta"] = {}
        else:
            choice["text"] = ""
        return self._event([choice])

    def usage(self, usage: Usage | Mapping[str, Any]) -> bytes:
        """The usage-only chunk that ends a stream asked for `include_usage`."""
        raw = usage_json(usage) if isinstance(usage, Usage) else dict(usage)
        return self._event([], usage=raw)

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = orjson.dumps({"choices": choices, **extra})
        return b"data: " + self._head + b"," + body[1:] + b"\n\n"


def error_event(body: Mapping[str, Any]) -> bytes:
    """A failure after the stream started: an `{"error": ...}` event in place of the rest."""
    return b"data: " + orjson.dumps(body) + b"\n\n"
