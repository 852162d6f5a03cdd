"""One cached answer, and how it goes back out: the JSON answer or an SSE replay.

Stored once from whatever answered (pass-through bytes, a rendered answer, a collected
stream); either kind of request can be answered from it, in the shape it asked for.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from smallfirst.types import ToolCall, ToolCallDelta, Usage
from smallfirst.wire.parse import parse_usage
from smallfirst.wire.render import DONE, ChunkWriter, answer_json, usage_json


@dataclass(slots=True)
class CachedAnswer:
    model: str
    """The configured model that answered (the ledger row of a hit names it)."""
    text: str
    finish_reason: str = "stop"
    usage: dict[str, Any] = field(default_factory=dict)
    """The answer's usage as the client first received it (OpenAI form)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] | None = None
    """The whole JSON answer a pass-through client received, replayed as it was."""
    created_at: float = field(default_factory=time.time)
    prompt: str | None = None
    """The last user turn (semantic entries: what the audit and the index are built from)."""

    def dumps(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def loads(cls, raw: str | bytes) -> CachedAnswer:
        """A stored entry; anything unreadable raises ValueError (the store logs a miss)."""
        try:
            data = orjson.loads(raw)
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"unreadable cache entry: {exc}") from exc

    @property
    def parsed_usage(self) -> Usage:
        return parse_usage(self.usage or None)

    @classmethod
    def from_body(cls, model: str, body: dict[str, Any], prompt: str | None) -> CachedAnswer:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        text = message.get("content") if "message" in choice else choice.get("text")
        return cls(
            model=model,
            text=text or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=dict(body.get("usage") or {}),
            tool_calls=list(message.get("tool_calls") or []),
            body=body,
            prompt=prompt,
        )

    def json_answer(self, request_id: str, chat: bool) -> bytes:
        if self.body is not None and ("message" in self.body["choices"][0]) == chat:
            return orjson.dumps({**self.body, "id": request_id, "created": int(time.time())})
        calls = [ToolCall.from_openai(c) for c in self.tool_calls] or None
        data = answer_json(
            request_id,
            self.model,
            self.text,
            chat,
            finish_reason=self.finish_reason,
            usage=self.usage or usage_json(Usage(0, 0)),
            tool_calls=calls,
        )
        return orjson.dumps(data)

    def sse_events(self, request_id: str, chat: bool, include_usage: bool) -> list[bytes]:
        """The stream the answer would have been: role, text, tool calls, finish, usage."""
        writer = ChunkWriter(request_id, self.model, chat)
        events = [writer.role()] if chat else []
        if self.text:
            events.append(writer.text(self.text))
        if self.tool_calls and chat:
            events.append(writer.tool_calls([_delta(i, c) for i, c in enumerate(self.tool_calls)]))
        events.append(writer.finish(self.finish_reason))
        if include_usage:
            events.append(writer.usage(self.usage or usage_json(Usage(0, 0))))
        events.append(DONE)
        return events


def _delta(index: int, call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    return ToolCallDelta(
        index=index,
        id=call.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )
