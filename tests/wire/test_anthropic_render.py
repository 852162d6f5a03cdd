"""Our answers in Anthropic's shape: message objects, stream events, errors."""

from __future__ import annotations

import orjson
import pytest

from smallfirst.errors import (
    AuthenticationError,
    BudgetExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    UpstreamError,
)
from smallfirst.types import Delta, Generation, ToolCall, ToolCallDelta, Usage
from smallfirst.wire.anthropic_render import EventWriter, error_json, message_json


def events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for chunk in raw.decode().strip().split("\n\n"):
        name, data = chunk.split("\n")
        out.append((name.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_text_then_two_calls_are_three_blocks_in_order() -> None:
    writer = EventWriter("req-1", "small")
    raw = writer.start()
    raw += writer.delta(Delta(text="Let me check."))
    raw += writer.delta(Delta(tool_calls=[ToolCallDelta(0, id="c0", name="f")]))
    raw += writer.delta(Delta(tool_calls=[ToolCallDelta(0, arguments='{"a": 1}')]))
    raw += writer.delta(Delta(tool_calls=[ToolCallDelta(1, id="c1", name="g", arguments="{}")]))
    raw += writer.finish("tool_calls", Usage(100, 7, cached_input_tokens=60))
    got = events(raw)
    assert [name for name, _ in got] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in got)
    starts = [data for name, data in got if name == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "text"),
        (1, "tool_use"),
        (2, "tool_use"),
    ]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "c0", "name": "f", "input": {}}
    pieces = [d for name, d in got if name == "content_block_delta"]
    assert pieces[1] == {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a": 1}'},
    }
    final = got[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }


def test_message_json_with_a_call() -> None:
    generation = Generation(
        "", "small", "tool_calls", Usage(5, 2), tool_calls=[ToolCall("c", "f", '{"x": [1]}')]
    )
    message = message_json(generation, "req-2")
    assert message["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {"x": [1]}}]
    assert message["stop_reason"] == "tool_use" and message["type"] == "message"


def test_call_arguments_that_are_no_object_are_an_upstream_error() -> None:
    generation = Generation("", "small", "tool_calls", tool_calls=[ToolCall("c", "f", "nope")])
    with pytest.raises(UpstreamError, match="not a JSON object"):
        message_json(generation, "req-3")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidRequestError("bad"), "invalid_request_error"),
        (AuthenticationError("who"), "authentication_error"),
        (ModelNotFoundError("nope"), "not_found_error"),
        (BudgetExceededError("broke"), "rate_limit_error"),
        (UpstreamError("down"), "api_error"),
    ],
)
def test_error_types(error, kind) -> None:
    assert error_json(error) == {"type": "error", "error": {"type": kind, "message": error.message}}
