"""OpenAI response shapes for answers from non-OpenAI backends (embedded, Anthropic, ...).

Stream chunks are written from a pre-encoded prefix plus the JSON-encoded text, so a streamed
token costs one small `orjson.dumps` of a string and no per-token objects.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from smallfirst.types import Generation, TokenLogprob, Usage

DONE = b"data: [DONE]\n\n"


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


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
    choice: dict[str, Any] = {"index": 0, "finish_reason": generation.finish_reason}
    if chat:
        choice["message"] = {"role": "assistant", "content": generation.text}
        choice["logprobs"] = logprobs_json(generation.logprobs)
    else:
        choice["text"] = generation.text
        choice["logprobs"] = _completion_logprobs(generation.logprobs)
    return {
        "id": request_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": generation.model,
        "choices": [choice],
        "usage": usage_json(generation.usage),
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

    def finish(self, reason: str) -> bytes:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        if self.chat:
            choice["delta"] = {}
        else:
            choice["text"] = ""
        return self._event([choice])

    def usage(self, usage: Usage) -> bytes:
        return self._event([], usage=usage_json(usage))

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = orjson.dumps({"choices": choices, **extra})
        return b"data: " + self._head + b"," + body[1:] + b"\n\n"


def error_event(body: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(body) + b"\n\n"
