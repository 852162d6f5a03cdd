"""Tool calling through a grammar: what the model is asked, and how its JSON is read back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from smallfirst.models.grammar_tools import plan_tool_call, read_answer, tool_stream, transcript
from smallfirst.types import ChatRequest, Delta, GenerationParams, Message, Tool, ToolCall, Usage

WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = Tool("get_time", None, {"type": "object", "properties": {"zone": {"type": "string"}}})
ASK = [Message("user", "Weather in Paris?")]


def plan_for(choice, tools=(WEATHER, TIME)):
    return plan_tool_call(ChatRequest(ASK, GenerationParams(tools=list(tools), tool_choice=choice)))


def test_no_tools_and_no_tool_turns_changes_nothing() -> None:
    assert plan_tool_call(ChatRequest(ASK)) is None


def test_required_holds_the_answer_to_a_call_of_an_offered_tool() -> None:
    plan = plan_for("required")
    schema = plan.request.params.json_schema
    names = [option["properties"]["name"]["const"] for option in schema["anyOf"]]
    assert names == ["get_weather", "get_time"] and plan.calls_allowed
    assert plan.request.params.tools is None  # the provider sees a schema, not tools
    system = plan.request.messages[0]
    assert system.role == "system" and "get_weather: Weather in a city" in system.content


def test_auto_also_allows_a_text_answer_and_a_named_choice_offers_one_tool() -> None:
    auto = plan_for("auto").request.params.json_schema
    assert auto["anyOf"][1]["required"] == ["answer"]
    named = plan_for({"type": "function", "function": {"name": "get_time"}})
    assert named.request.params.json_schema["properties"]["name"] == {"const": "get_time"}


def test_none_answers_in_text_without_a_schema() -> None:
    plan = plan_for("none")
    assert not plan.calls_allowed and plan.request.params.json_schema is None


def test_earlier_calls_and_their_results_are_written_into_the_transcript() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    turns = transcript(
        [
            *ASK,
            Message("assistant", "", tool_calls=[call]),
            Message("tool", "18C", tool_call_id="call_1"),
        ]
    )
    assert orjson.loads(turns[1].content) == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert (turns[2].role, turns[2].content) == ("tool", "get_weather returned: 18C")


def test_the_answer_is_read_as_a_call_or_as_text() -> None:
    text, calls = read_answer('{"name": "get_weather", "arguments": {"city": "Rome"}}')
    assert text == "" and calls[0].name == "get_weather" and calls[0].id.startswith("call_")
    assert orjson.loads(calls[0].arguments) == {"city": "Rome"}
    assert read_answer('{"answer": "It is sunny."}') == ("It is sunny.", None)
    assert read_answer("not json") == ("not json", None)


def test_a_streamed_call_arrives_as_one_piece_and_finishes_with_tool_calls() -> None:
    async def model() -> AsyncIterator[Delta]:
        yield Delta(text='{"name": "get_time", ')
        yield Delta(text='"arguments": {"zone": "CET"}}')
        yield Delta(finish_reason="stop", usage=Usage(10, 12))

    async def drain() -> list[Delta]:
        return [delta async for delta in tool_stream(model())]

    first, last = asyncio.run(drain())
    assert first.tool_calls[0].name == "get_time" and first.tool_calls[0].index == 0
    assert (last.finish_reason, last.usage) == ("tool_calls", Usage(10, 12))
