"""Translation between our chat types and Anthropic's Messages API, both ways."""

import json

import pytest

from smallfirst.errors import InvalidRequestError, UpstreamError
from smallfirst.models.anthropic_wire import (
    StreamTranslator,
    anthropic_usage,
    messages_body,
    parse_message,
)
from smallfirst.types import (
    ChatRequest,
    ContentPart,
    GenerationParams,
    Message,
    Tool,
    ToolCall,
    ToolCallDelta,
)

WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def body_for(messages, **params):
    return messages_body("claude-x", ChatRequest(messages, GenerationParams(**params)), False)


def test_tools_become_input_schemas():
    body = body_for([Message("user", "hi")], tools=[WEATHER, Tool("noop")])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather in a city",
            "input_schema": WEATHER.parameters,
        },
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body  # Anthropic's default is OpenAI's default


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice, parallel, expected):
    body = body_for(
        [Message("user", "hi")], tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel
    )
    assert body["tool_choice"] == expected


def test_tool_round_trip_turns():
    """Assistant calls become tool_use blocks; consecutive results share one user turn."""
    calls = [
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", '{"city": "Rome"}'),
    ]
    body = body_for(
        [
            Message("system", "be brief"),
            Message("user", "weather in Paris and Rome?"),
            Message("assistant", "", tool_calls=calls),
            Message("tool", "18C sunny", tool_call_id="call_1"),
            Message("tool", "25C clear", tool_call_id="call_2"),
        ],
        tools=[WEATHER],
    )
    assert body["system"] == "be brief"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "call_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": [{"type": "text", "text": "18C sunny"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": [{"type": "text", "text": "25C clear"}],
                },
            ],
        },
    ]


def test_images_by_url_and_data():
    parts = [
        ContentPart("text", text="what is this?"),
        ContentPart("image", url="https://example.com/cat.png"),
        ContentPart("image", url="data:image/png;base64,iVBORw0KGgo="),
    ]
    body = body_for([Message("user", "what is this?", parts=parts)])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
    ]


def test_pdf_file_part_becomes_document():
    raw = {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0x"}}
    body = body_for([Message("user", "", parts=[ContentPart("file", raw=raw)])])
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
        }
    ]


@pytest.mark.parametrize(
    "part",
    [
        ContentPart("image", url="data:image/png,notbase64"),
        ContentPart("audio", raw={"type": "input_audio"}),
        ContentPart("file", raw={"type": "file", "file": {"file_id": "file-1"}}),
    ],
)
def test_parts_it_cannot_carry_are_refused(part):
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content\[0\]"):
        body_for([Message("user", "", parts=[part])])


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([Message("user", "hi"), Message("user", "hi", name="ann")], "messages[1].name"),
        (
            [
                Message(
                    "user",
                    "",
                    parts=[
                        ContentPart("text", text="a"),
                        ContentPart("image", url="https://e.com/a.png", detail="low"),
                    ],
                )
            ],
            "messages[0].content[1].image_url.detail",
        ),
    ],
)
def test_a_name_or_image_detail_it_has_no_place_for_is_refused_by_path(messages, param):
    """The backstop for a config that declares `message_names` / `image_detail` anyway."""
    with pytest.raises(InvalidRequestError) as err:
        body_for(messages)
    assert err.value.param == param and err.value.message.startswith(param)


def test_an_image_detail_of_auto_asks_for_nothing_and_passes():
    part = ContentPart("image", url="https://e.com/a.png", detail="auto")
    body = body_for([Message("user", "", parts=[part])])
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://e.com/a.png"}}
    ]


def test_arguments_that_are_no_object_are_refused():
    call = ToolCall("call_1", "f", "[1, 2]")
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        body_for([Message("user", "x"), Message("assistant", "", tool_calls=[call])])


def test_usage_counts_cached_tokens_in_the_prompt():
    usage = anthropic_usage(
        {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30,
        },
        "claude",
    )
    assert (usage.input_tokens, usage.output_tokens) == (140, 4)
    assert (usage.cached_input_tokens, usage.cache_write_tokens) == (100, 30)


def test_bad_cache_count_is_an_upstream_error():
    with pytest.raises(UpstreamError, match="cache_read_input_tokens"):
        anthropic_usage({"input_tokens": 1, "cache_read_input_tokens": -5}, "claude")


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(reason, finish):
    message = {"content": [], "stop_reason": reason, "usage": {}}
    assert parse_message(message, "claude").finish_reason == finish


def test_message_with_text_and_tool_use():
    message = {
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    generation = parse_message(message, "claude")
    assert generation.text == "Checking." and generation.finish_reason == "tool_calls"
    assert generation.tool_calls == [ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}')]


def test_stream_tool_use_becomes_openai_pieces():
    translator = StreamTranslator("claude")
    events = [
        {
            "type": "message_start",
            "message": {"usage": {"input_tokens": 7, "cache_read_input_tokens": 3}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hm."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ": 1}"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
    deltas = [d for e in events for d in translator.event(e["type"], e)]
    assert [d.text for d in deltas if d.text] == ["Hm."]
    pieces = [p for d in deltas for p in d.tool_calls or ()]
    assert pieces == [
        ToolCallDelta(0, id="toolu_9", name="f"),
        ToolCallDelta(0, arguments='{"a"'),
        ToolCallDelta(0, arguments=": 1}"),
    ]
    json.loads("".join(p.arguments for p in pieces))
    last = translator.last()
    assert last.finish_reason == "tool_calls"
    assert (last.usage.input_tokens, last.usage.cached_input_tokens) == (10, 3)
    assert last.usage.output_tokens == 12


def test_stream_error_event_raises():
    translator = StreamTranslator("claude")
    with pytest.raises(UpstreamError, match="Overloaded"):
        translator.event(
            "error",
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        )
