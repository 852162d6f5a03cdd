"""Nothing silently dropped: tools, tool results and images reach a model that honours them,
or the request is refused with a 400 naming the field (official openai SDK, live gateway,
the embedded Gemma and a real scripted upstream)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from smallfirst.config import Config
from tests.server.gateway_helpers import running_gateway

pytestmark = pytest.mark.slow

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
    "required": ["city"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": WEATHER_SCHEMA,
    },
}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.fixture(scope="module")
def gw(embedded_model_path):
    with running_gateway(Config()) as running:
        yield running


def test_a_required_tool_call_validates_against_its_schema(gw) -> None:
    answer = gw.client().chat.completions.create(
        model="gemma-3-270m", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=40
    )
    choice = answer.choices[0]
    assert choice.finish_reason in ("tool_calls", "length")
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    if choice.finish_reason == "tool_calls":
        jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)


def test_a_tool_round_trip_and_a_streamed_call(gw) -> None:
    client = gw.client()
    chunks = list(
        client.chat.completions.create(
            model="gemma-3-270m",
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=40,
            stream=True,
        )
    )
    pieces = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert pieces and pieces[0][0].function.name == "get_weather" and pieces[0][0].id
    assert chunks[-1].choices[0].finish_reason in ("tool_calls", "length")
    call = pieces[0][0]
    turns: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
    ]
    final = client.chat.completions.create(
        model="gemma-3-270m", messages=turns, tools=[WEATHER], tool_choice="none", max_tokens=12
    )
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content


def test_an_image_to_a_text_only_model_is_refused_naming_the_part(gw) -> None:
    content = [{"type": "text", "text": "What is in this picture?"}, IMAGE]
    for model in ("gemma-3-270m", "auto"):
        with pytest.raises(openai.BadRequestError) as err:
            gw.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": content}], max_tokens=4
            )
        assert err.value.body["param"] == "messages[0].content[1]"
        assert "vision" in err.value.body["message"]
    rows = gw.rows()
    assert rows[-1]["status"] == 400 and "vision" in rows[-1]["error"]


def test_a_tool_result_without_its_call_id_is_a_400(gw) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        gw.client().chat.completions.create(
            model="gemma-3-270m", messages=[*ASK, {"role": "tool", "content": "18C"}]
        )
    assert "tool_call_id" in err.value.body["message"]


def test_a_named_tool_choice_must_name_a_given_tool(gw) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        gw.client().chat.completions.create(
            model="gemma-3-270m",
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
    assert "get_time" in err.value.body["message"]


def test_auto_sends_an_image_to_the_model_that_sees_it(scripted, embedded_model_path) -> None:
    upstream, base_url = scripted
    config = Config.model_validate(
        {
            "models": [
                {"name": "gemma-3-270m", "backend": "llamacpp", "tier": "small"},
                {"name": "eyes", "backend": "openai", "base_url": base_url, "tier": "large"},
            ]
        }
    )
    content = [{"type": "text", "text": "What is in this picture?"}, IMAGE]
    with running_gateway(config) as running:
        raw = running.client().chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": content}], max_tokens=4
        )
    assert raw.headers["x-smallfirst-model"] == "eyes"
    assert "gemma-3-270m lacks vision" in raw.headers["x-smallfirst-route-reason"]
    assert upstream.received[-1]["messages"][0]["content"][1] == IMAGE  # intact
