"""Responses API answers: the `response` object and its streaming events, as bytes.

One `ResponseOutput` folds an answer (whole, or as deltas) into the response's `output`
items, a message with its text and one `function_call` item per call, in the order they
began; streamed, each step is also an event (`response.output_text.delta`,
`response.function_call_arguments.delta`, `response.output_item.added` / `done`, ...) with
its `sequence_number`, as OpenAI sends them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from smallfirst.types import ToolCall, ToolCallDelta, Usage

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""finish_reason -> `incomplete_details.reason`; any other reason completes the response."""


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


class ResponseOutput:
    """The response being built: its fixed fields (`head`), its output items, and the
    events that record each step of a stream."""

    def __init__(self, response_id: str, head: dict[str, Any]) -> None:
        self.id = response_id
        self.head = {"id": response_id, "object": "response", "created_at": int(time.time())}
        self.head |= head
        self.items: list[dict[str, Any]] = []
        self._message: dict[str, Any] | None = None
        self._calls: dict[int, dict[str, Any]] = {}
        self._sequence = 0

    # -- the response object

    def response(
        self, status: str, usage: Usage | None = None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            **self.head,
            "status": status,
            "error": error,
            "incomplete_details": None,
            "output": self.items,
            "usage": None if usage is None else usage_json(usage),
        }

    def finished(self, finish_reason: str, usage: Usage) -> dict[str, Any]:
        reason = INCOMPLETE.get(finish_reason)
        out = self.response("incomplete" if reason else "completed", usage)
        if reason:
            out["incomplete_details"] = {"reason": reason}
        return out

    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(item["call_id"], item["name"], item["arguments"])
            for item in self.items
            if item["type"] == "function_call"
        ]

    @property
    def text(self) -> str:
        parts = self._message["content"] if self._message is not None else ()
        return "".join(part["text"] for part in parts if part["type"] == "output_text")

    # -- steps (each returns its events)

    def started(self) -> bytes:
        response = self.response("in_progress")
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def add_text(self, text: str) -> bytes:
        out, message = self._open_message()
        parts = message["content"]
        if not parts or parts[-1]["type"] != "output_text":
            out += self._add_part(message, {"type": "output_text", "text": "", "annotations": []})
        parts[-1]["text"] += text
        where = self._in_message(len(parts) - 1)
        return out + self._event("response.output_text.delta", **where, delta=text, logprobs=[])

    def add_refusal(self, refusal: str) -> bytes:
        """A whole refusal (answers carry it whole; deltas carry none)."""
        out, message = self._open_message()
        return out + self._add_part(message, {"type": "refusal", "refusal": refusal})

    def _open_message(self) -> tuple[bytes, dict[str, Any]]:
        if self._message is not None:
            return b"", self._message
        self._message = {
            "type": "message",
            "id": f"msg_{self.id.removeprefix('resp_')}",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        return self._item_added(self._message), self._message

    def _add_part(self, message: dict[str, Any], part: dict[str, Any]) -> bytes:
        message["content"].append(part)
        where = self._in_message(len(message["content"]) - 1)
        return self._event("response.content_part.added", **where, part=dict(part))

    def add_tool_calls(self, pieces: list[ToolCallDelta]) -> bytes:
        out = b""
        for piece in pieces:
            item = self._calls.get(piece.index)
            if item is None:
                item = self._calls[piece.index] = {
                    "type": "function_call",
                    "id": f"fc_{self.id.removeprefix('resp_')}_{piece.index}",
                    "call_id": piece.id or f"call_{piece.index}",
                    "name": piece.name or "",
                    "arguments": "",
                    "status": "in_progress",
                }
                out += self._item_added(item)
            elif piece.name:
                item["name"] += piece.name
            if piece.arguments:
                item["arguments"] += piece.arguments
                out += self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self.items.index(item),
                    delta=piece.arguments,
                )
        return out

    def done(self) -> bytes:
        """Every open item closed (`...done` events); the items are then complete."""
        out = b""
        for item in self.items:
            index = self.items.index(item)
            if item["type"] == "message":
                for content_index, part in enumerate(item["content"]):
                    where = self._in_message(content_index)
                    if part["type"] == "output_text":
                        text = part["text"]
                        out += self._event(
                            "response.output_text.done", **where, text=text, logprobs=[]
                        )
                    out += self._event("response.content_part.done", **where, part=part)
            else:
                out += self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            item["status"] = "completed"
            out += self._event("response.output_item.done", output_index=index, item=item)
        return out

    def end(self, response: dict[str, Any]) -> bytes:
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}
        return self._event(kind.get(response["status"], "response.failed"), response=response)

    def _item_added(self, item: dict[str, Any]) -> bytes:
        self.items.append(item)
        index = len(self.items) - 1
        return self._event("response.output_item.added", output_index=index, item=item)

    def _in_message(self, content_index: int) -> dict[str, Any]:
        assert self._message is not None
        index = self.items.index(self._message)
        return {
            "item_id": self._message["id"],
            "output_index": index,
            "content_index": content_index,
        }

    def _event(self, kind: str, **fields: Any) -> bytes:
        self._sequence += 1
        data = orjson.dumps({"type": kind, "sequence_number": self._sequence, **fields})
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
