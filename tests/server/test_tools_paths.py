"""Tools survive every path that is not a byte pass-through: a cascade (the OpenAI-compatible
provider builds the upstream body) and the in-process Client, streamed and not (official
openai SDK, real scripted upstreams)."""

from __future__ import annotations

import asyncio
import json

import pytest

from smallfirst import Client
from smallfirst.batch.processors import ModelProcessor
from smallfirst.errors import InvalidRequestError
from smallfirst.models.registry import Registry
from smallfirst.testing import Script
from smallfirst.types import Tool, ToolCall
from tests.server.gateway_helpers import running_gateway
from tests.test_target import config_for, upstreams  # noqa: F401 - the fixture

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = ToolCall("call_7", "get_weather", '{"city": "Paris"}')
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def test_a_cascade_sends_the_tools_and_returns_the_call(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(tool_calls=[CALL], prompt_tokens=5, completion_tokens=3)
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    with running_gateway(config) as gw:
        client = gw.client()
        answer = client.chat.completions.create(
            model="cascade-ladder", messages=ASK, tools=[WEATHER], tool_choice="required"
        )
        sent = scripted["small"].received[-1]
        assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "required"
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls
        assert (call.id, call.function.name) == ("call_7", "get_weather")
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        turns = [
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": "call_7", "content": "18C"},
        ]
        scripted["small"].default = Script(text="18C and sunny")
        final = client.chat.completions.create(
            model="cascade-ladder", messages=turns, tools=[WEATHER]
        )
        assert final.choices[0].message.content == "18C and sunny"
        forwarded = scripted["small"].received[-1]["messages"]
        assert forwarded[1]["tool_calls"][0]["id"] == "call_7"
        assert forwarded[2] == {"role": "tool", "content": "18C", "tool_call_id": "call_7"}


def test_the_client_streams_and_returns_tool_calls(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(tool_calls=[CALL], prompt_tokens=5, completion_tokens=3)
    offered = [Tool.from_openai(WEATHER)]
    with Client(config_for(urls), ledger=False) as client:
        answer = client.chat("Weather in Paris?", model="small", tools=offered)
        assert answer.generation.finish_reason == "tool_calls"
        assert answer.generation.tool_calls == [CALL]
        deltas = list(client.stream("Weather in Paris?", model="small", tools=offered))
    pieces = [p for d in deltas for p in d.tool_calls or []]
    assert pieces and pieces[0].name == "get_weather" and pieces[0].id == "call_7"
    assert "".join(p.arguments for p in pieces) == '{"city": "Paris"}'


def test_a_batch_item_keeps_its_tools_and_returns_the_call(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(tool_calls=[CALL], prompt_tokens=5, completion_tokens=3)
    processor = ModelProcessor(Registry(config_for(urls)), "small")
    item = {"body": {"messages": ASK, "tools": [WEATHER], "tool_choice": "required"}}
    done = asyncio.run(processor.process(item))
    assert scripted["small"].received[-1]["tools"] == [WEATHER]
    assert done.output["finish_reason"] == "tool_calls"
    assert done.output["tool_calls"] == [CALL.to_openai()]
    with pytest.raises(InvalidRequestError, match="presence_penalty"):
        asyncio.run(processor.process({"body": {"messages": ASK, "presence_penalty": 1}}))


def test_a_streamed_cascade_answer_keeps_its_tool_call(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(tool_calls=[CALL], prompt_tokens=5, completion_tokens=3)
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    with running_gateway(config) as gw:
        chunks = list(
            gw.client().chat.completions.create(
                model="cascade-ladder", messages=ASK, tools=[WEATHER], stream=True
            )
        )
    pieces = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert pieces and pieces[0][0].id == "call_7" and pieces[0][0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
