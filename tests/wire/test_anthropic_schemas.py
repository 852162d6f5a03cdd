"""Anthropic Messages API bodies: any JSON gives a parsed request or a 400 naming the field,
never another exception; valid bodies become the chat request they mean."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smallfirst.errors import InvalidRequestError
from smallfirst.models.anthropic_wire import messages_body
from smallfirst.types import ChatRequest, ContentPart, Message, ToolCall
from smallfirst.wire.anthropic_schemas import MessagesBody
from smallfirst.wire.schemas import validate

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image", "tool_use", "tool_result", "video"]) | JSON},
    optional={
        "text": JSON,
        "source": st.fixed_dictionaries(
            {"type": st.sampled_from(["base64", "url"]) | JSON},
            optional={"media_type": st.just("image/png") | JSON, "data": JSON, "url": JSON},
        ),
        "id": JSON,
        "name": JSON,
        "input": JSON,
        "tool_use_id": JSON,
        "content": JSON,
        "is_error": JSON,
    },
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]) | JSON},
    optional={"content": st.text(max_size=8) | st.lists(BLOCK, max_size=3) | JSON},
)
BODY = st.fixed_dictionaries(
    {"model": st.sampled_from(["small", ""]) | JSON},
    optional={
        "max_tokens": st.integers(-2, 100) | JSON,
        "messages": st.lists(MESSAGE, max_size=3) | JSON,
        "system": JSON,
        "tools": st.lists(
            st.fixed_dictionaries({"name": st.just("f") | JSON, "input_schema": JSON}), max_size=2
        )
        | JSON,
        "tool_choice": st.fixed_dictionaries(
            {"type": st.sampled_from(["auto", "any", "tool", "none"]) | JSON},
            optional={"name": JSON},
        ),
        "temperature": JSON,
        "stream": JSON,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODY)
def test_any_body_parses_or_is_a_400(data) -> None:
    try:
        body = validate(MessagesBody, data)
        request = ChatRequest(body.to_messages(), body.params())
        body.openai_view(request.messages, request.params)
        messages_body("claude", request, stream=False)
    except InvalidRequestError as exc:
        assert exc.status == 400 and exc.message


def test_a_user_turn_splits_into_tool_results_and_text() -> None:
    body = validate(
        MessagesBody,
        {
            "model": "m",
            "max_tokens": 5,
            "system": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Calling."},
                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "is_error": True,
                            "content": "boom",
                        },
                        {"type": "text", "text": "and then?"},
                    ],
                },
            ],
        },
    )
    assert body.to_messages() == [
        Message("system", "rules"),
        Message("user", "go"),
        Message("assistant", "Calling.", tool_calls=[ToolCall("t1", "f", '{"x":1}')]),
        Message("tool", "one", tool_call_id="t1"),
        Message("tool", "Error: boom", tool_call_id="t2"),
        Message("user", "and then?"),
    ]


def test_images_become_parts_in_order() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"},
    }
    body = validate(
        MessagesBody,
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, image]}],
        },
    )
    [message] = body.to_messages()
    assert message.parts == [
        ContentPart("text", text="see"),
        ContentPart("image", url="data:image/gif;base64,R0lG"),
    ]


@pytest.mark.parametrize(
    ("choice", "ours", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
)
def test_tool_choice(choice, ours, parallel) -> None:
    body = validate(
        MessagesBody,
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": choice,
        },
    )
    params = body.params()
    assert (params.tool_choice, params.parallel_tool_calls) == (ours, parallel)
    assert params.tools[0].parameters == {"type": "object"}


def test_server_tools_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match=r"tools\[0\]"):
        validate(
            MessagesBody,
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
        )
