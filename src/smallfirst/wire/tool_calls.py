"""Tool calls on the wire: in answers, as streamed pieces, and put back together.

OpenAI streams a call in pieces: the first piece of call `index` carries its id and name,
later ones more of its arguments' JSON text. `ToolCallAssembler` folds such pieces (ours or
an upstream's) into whole calls, so a stream's calls are charged and recorded like an
answer's.
"""

from __future__ import annotations

from typing import Any

from smallfirst.errors import UpstreamError
from smallfirst.types import ToolCall, ToolCallDelta


def parse_tool_calls(raw: Any, model: str | None = None) -> list[ToolCall] | None:
    """An answer message's `tool_calls`; a malformed list is an UpstreamError (502)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(call, dict) for call in raw):
        source = "the upstream" if model is None else f"upstream model {model!r}"
        raise UpstreamError(f"{source} returned malformed tool_calls: {str(raw)[:200]}")
    return [ToolCall.from_openai(call) for call in raw] or None


def parse_tool_call_deltas(raw: Any) -> list[ToolCallDelta]:
    """A chunk delta's `tool_calls` pieces (anything malformed is skipped)."""
    pieces = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        raw_function = item.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        arguments = function.get("arguments")
        index = item.get("index")
        pieces.append(
            ToolCallDelta(
                index=index if isinstance(index, int) else 0,
                id=item.get("id"),
                name=function.get("name"),
                arguments=arguments if isinstance(arguments, str) else "",
            )
        )
    return pieces


def tool_call_deltas_json(pieces: list[ToolCallDelta]) -> list[dict[str, Any]]:
    out = []
    for piece in pieces:
        item: dict[str, Any] = {"index": piece.index}
        function: dict[str, Any] = {"arguments": piece.arguments}
        if piece.id is not None:
            item["id"], item["type"] = piece.id, "function"
        if piece.name is not None:
            function["name"] = piece.name
        item["function"] = function
        out.append(item)
    return out


def deltas_of(calls: list[ToolCall]) -> list[ToolCallDelta]:
    """Whole calls as one streamed piece each (for backends that make a call at once)."""
    return [
        ToolCallDelta(index=i, id=call.id, name=call.name, arguments=call.arguments)
        for i, call in enumerate(calls)
    ]


class ToolCallAssembler:
    def __init__(self) -> None:
        self._calls: dict[int, ToolCall] = {}

    def add(self, pieces: list[ToolCallDelta]) -> None:
        for piece in pieces:
            call = self._calls.setdefault(piece.index, ToolCall(id="", name="", arguments=""))
            if piece.id:
                call.id = piece.id
            if piece.name:
                call.name += piece.name
            call.arguments += piece.arguments

    def calls(self) -> list[ToolCall] | None:
        return [self._calls[i] for i in sorted(self._calls)] or None
