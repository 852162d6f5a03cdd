"""`POST /v1/responses` with the official openai SDK (`client.responses.create`), streamed and
not, against a live gateway in front of a real scripted OpenAI-compatible upstream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from pydantic import BaseModel

from smallfirst.config import CascadeConfig
from smallfirst.testing import Script
from smallfirst.types import ToolCall
from tests.server.gateway_helpers import running_gateway, scripted_config

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')


@pytest.fixture
def gw(scripted, tmp_path):
    upstream, base_url = scripted
    config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    with running_gateway(config) as running:
        running.upstream = upstream
        yield running


def test_text_input_with_instructions_answers_a_response_and_a_ledger_row(gw) -> None:
    gw.upstream.enqueue(Script(text="hello there", prompt_tokens=7, completion_tokens=3))
    response = gw.client().responses.create(
        model="small",
        input="Say hi",
        instructions="Be brief.",
        max_output_tokens=20,
        temperature=0.2,
    )
    assert response.output_text == "hello there"
    assert response.status == "completed" and response.object == "response"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    sent = gw.upstream.received[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hi"},
    ]
    assert (sent["max_completion_tokens"], sent["temperature"], sent["model"]) == (
        20,
        0.2,
        "up-small",
    )
    [row] = gw.rows()
    assert response.id == "resp_" + row["request_id"]
    assert (row["endpoint"], row["model"], row["status"]) == ("responses", "small", 200)
    assert row["cost_usd"] == pytest.approx((7 * 1.0 + 3 * 2.0) / 1e6)
    assert row["baseline_cost_usd"] == pytest.approx((7 * 10.0 + 3 * 30.0) / 1e6)


def test_items_with_image_parts_reach_the_upstream_as_chat_parts(gw) -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    gw.client().responses.create(
        model="large",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                ],
            }
        ],
    )
    [message] = gw.upstream.received[-1]["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_function_tool_round_trip_via_previous_response_id(gw, stream: bool) -> None:
    gw.upstream.enqueue(
        Script(text="", tool_calls=[CALL], prompt_tokens=20, completion_tokens=8),
        Script(text="It is 18C and sunny in Paris.", prompt_tokens=40),
    )
    client = gw.client()
    first = _create(
        client, stream, model="small", input="Weather in Paris?", tools=[WEATHER],
        tool_choice="required",
    )  # fmt: skip
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments), call.call_id) == (
        "get_weather", {"city": "Paris"}, "call_1",
    )  # fmt: skip
    sent = gw.upstream.received[-1]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {k: v for k, v in WEATHER.items() if k != "type"},
        }
    ]
    assert sent["tool_choice"] == "required"
    final = _create(
        client, stream, model="small", previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "18C sunny"}],
    )  # fmt: skip
    assert final.output_text == "It is 18C and sunny in Paris."
    assert final.previous_response_id == first.id
    assert client.responses.retrieve(final.id).output_text == final.output_text
    assert gw.upstream.received[-1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL.to_openai()]},
        {"role": "tool", "content": "18C sunny", "tool_call_id": "call_1"},
    ]
    rows = gw.rows(kind="request")
    assert [(r["endpoint"], r["stream"], r["status"]) for r in rows] == [
        ("responses", stream, 200)
    ] * 2
    assert rows[0]["cost_usd"] == pytest.approx((20 * 1.0 + 8 * 2.0) / 1e6)


def _create(client: openai.OpenAI, stream: bool, **request):
    """The final response, from the whole answer or from the stream's events."""
    if not stream:
        return client.responses.create(**request)
    events = list(client.responses.create(stream=True, **request))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(1, len(events) + 1))
    final = events[-1].response
    for item in final.output:
        assert "response.output_item.added" in kinds and "response.output_item.done" in kinds
        if item.type == "function_call":
            pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
            assert "".join(pieces) == item.arguments
        else:
            pieces = [e.delta for e in events if e.type == "response.output_text.delta"]
            assert "".join(pieces) == final.output_text
    return final


def test_streamed_text_arrives_as_output_text_deltas(gw) -> None:
    gw.upstream.enqueue(Script(text="one two three", prompt_tokens=4))
    final = _create(gw.client(), True, model="small", input="Count")
    assert final.output_text == "one two three"
    assert final.usage.input_tokens == 4
    [row] = gw.rows()
    assert (row["stream"], row["output_tokens"], row["status"]) == (True, 3, 200)


def test_structured_output_json_schema_goes_upstream_as_response_format(gw) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    gw.upstream.enqueue(Script(text='{"city": "Rome"}'))
    response = gw.client().responses.create(
        model="small",
        input="Capital of Italy as JSON",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"city": "Rome"}
    assert response.text.format.type == "json_schema"
    sent = gw.upstream.received[-1]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    gw.client().responses.create(
        model="small", input="JSON please", text={"format": {"type": "json_object"}}
    )
    assert gw.upstream.received[-1]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_cut_off_answer_is_incomplete(gw, stream: bool) -> None:
    gw.upstream.enqueue(Script(text="a b c", finish_reason="length"))
    request = {"model": "small", "input": "x", "max_output_tokens": 3}
    if stream:
        response = list(gw.client().responses.create(stream=True, **request))[-1].response
    else:
        response = gw.client().responses.create(**request)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "a b c"


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"role": "user", "content": "hi", "foo": 1}, "input[1].foo"),
        ({"role": "assistant", "content": "ok", "phase": "commentary"}, "input[1].phase"),
        (
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "x"},
                    {"type": "input_text", "text": "y", "bar": 2},
                ],
            },
            "input[1].content[1].bar",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "https://e.com/a.png", "file_id": "file-1"}
                ],
            },
            "input[1].content[0].file_id",
        ),
        (
            {"type": "function_call_output", "call_id": "c1", "output": "18C", "name": "f"},
            "input[1].name",
        ),
    ],
)
def test_an_input_field_the_chat_turns_would_drop_is_a_400_naming_its_path(gw, item, param) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        gw.client().responses.create(model="small", input=[{"role": "user", "content": "hi"}, item])
    error = refused.value.body
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert error["message"].startswith(param)
    assert gw.upstream.received == []


def test_documented_labels_and_nulls_in_input_items_still_answer(gw) -> None:
    gw.upstream.enqueue(Script(text="fine"))
    part = {"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}
    history = [
        {"type": "message", "role": "user", "content": "hi", "phase": None},
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [part],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "input_text",
                    "text": "and?",
                    "prompt_cache_breakpoint": {"mode": "explicit"},
                }
            ],
        },
    ]
    response = gw.client().responses.create(model="small", input=history)
    assert response.output_text == "fine"
    assert [m["content"] for m in gw.upstream.received[-1]["messages"]] == ["hi", "Hello!", "and?"]


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0]"),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, None),
    ],
)
def test_bad_or_unsupported_fields_are_a_400_naming_them(gw, request_fields, param) -> None:
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="small", **request_fields)
    error = refused.value.body
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"].startswith(param), error
    assert gw.upstream.received == []
    [row] = gw.rows()
    assert (row["endpoint"], row["status"]) == ("responses", 400)


def test_unknown_previous_response_is_a_404_and_store_false_keeps_nothing(gw) -> None:
    client = gw.client()
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="small", input="x", previous_response_id="resp_nope")
    assert missing.value.body["param"] == "previous_response_id"
    unstored = client.responses.create(model="small", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="small", input="y", previous_response_id=unstored.id)


def test_another_key_cannot_continue_a_stored_response(scripted, tmp_path) -> None:
    upstream, base_url = scripted
    config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    with running_gateway(config, auth=True) as gw:
        _, mine = gw.create_key("mine")
        _, theirs = gw.create_key("theirs")
        first = gw.client(mine).responses.create(model="small", input="secret plan")
        with pytest.raises(openai.NotFoundError):
            gw.client(theirs).responses.create(
                model="small", input="go on", previous_response_id=first.id
            )
        with pytest.raises(openai.NotFoundError):
            gw.client(theirs).responses.retrieve(first.id)
        gw.client(mine).responses.create(
            model="small", input="go on", previous_response_id=first.id
        )
    assert upstream.received[-1]["messages"][0] == {"role": "user", "content": "secret plan"}


def test_a_budget_refusal_is_a_429_in_the_openai_shape(scripted, tmp_path) -> None:
    upstream, base_url = scripted
    config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    with running_gateway(config, auth=True) as gw:
        _, secret = gw.create_key("poor", budget_usd=0.0000001)
        with pytest.raises(openai.RateLimitError) as refused:
            gw.client(secret).responses.create(model="large", input="x" * 4000)
        assert refused.value.body["type"] == "insufficient_quota"
    assert upstream.received == []


def test_a_stream_that_fails_midway_ends_with_response_failed_and_is_charged(gw) -> None:
    gw.upstream.enqueue(Script(behaviour="stream_then_error", text="partial answer"))
    events = list(gw.client().responses.create(model="small", input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "upstream_error"
    [row] = gw.rows()
    assert row["status"] == 502 and row["output_tokens"] > 0


def test_a_cascade_answers_a_response(scripted, tmp_path) -> None:
    upstream, base_url = scripted
    config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    config.cascades = {"ladder": CascadeConfig(rungs=["small", "large"])}
    with running_gateway(config) as gw:
        upstream.enqueue(Script(text="from the ladder"))
        response = gw.client().responses.create(model="cascade-ladder", input="x")
        assert response.output_text == "from the ladder"
        events = list(gw.client().responses.create(model="cascade-ladder", input="x", stream=True))
        assert events[-1].type == "response.completed"
        rows = gw.rows(kind="request")
    assert [(r["endpoint"], r["router"], r["status"]) for r in rows] == [
        ("responses", "cascade-ladder", 200)
    ] * 2


def test_auto_routes_a_response_like_a_chat(gw) -> None:
    gw.upstream.enqueue(Script(text="routed"))
    raw = gw.client().responses.with_raw_response.create(model="auto", input="Say hi")
    assert raw.parse().output_text == "routed"
    [row] = gw.rows()
    assert (row["requested_model"], row["router"], row["endpoint"]) == ("auto", "auto", "responses")
    assert raw.headers["x-smallfirst-model"] == row["model"] == raw.parse().model


def test_a_client_that_leaves_mid_stream_is_charged_for_what_it_was_sent(scripted) -> None:
    upstream, base_url = scripted
    upstream.default = Script("slow_stream", text="one two three four five six", delay_s=0.05)
    with running_gateway(scripted_config(base_url), auth=True) as gw:
        key, secret = gw.create_key("leaver", budget_usd=1.0)
        body = {"model": "large", "input": "count", "stream": True, "max_output_tokens": 16}
        headers = {"authorization": f"Bearer {secret}"}
        with httpx.stream("POST", gw.url + "/v1/responses", json=body, headers=headers) as sent:
            assert sent.status_code == 200
            deltas = 0
            for line in sent.iter_lines():
                deltas += line == "event: response.output_text.delta"
                if deltas == 2:
                    break
        deadline = time.monotonic() + 10
        while not (rows := [r for r in gw.rows() if r["status"] == 499]):
            assert time.monotonic() < deadline, gw.rows()
            time.sleep(0.02)
        [row] = rows
        assert row["endpoint"] == "responses" and row["output_tokens"] >= 2
        assert row["cost_usd"] > 0
        assert gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])


def test_earlier_output_items_passed_back_as_input_continue_the_conversation(gw) -> None:
    """The other way to keep state: the client sends the earlier output items itself."""
    gw.upstream.enqueue(Script(text="", tool_calls=[CALL]), Script(text="Sunny."))
    client = gw.client()
    first = client.responses.create(model="small", input="Weather?", tools=[WEATHER], store=False)
    history = [{"role": "user", "content": "Weather?"}, *first.output]
    output = {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
    final = client.responses.create(model="small", input=[*history, output], tools=[WEATHER])
    assert final.output_text == "Sunny."
    assert gw.upstream.received[-1]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [CALL.to_openai()]},
        {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
    ]


def test_the_sdk_parse_and_stream_helpers(gw) -> None:
    class City(BaseModel):
        name: str
        country: str

    gw.upstream.enqueue(Script(text='{"name": "Rome", "country": "Italy"}'), Script(text="a b"))
    client = gw.client()
    parsed = client.responses.parse(model="small", input="Capital of Italy?", text_format=City)
    assert parsed.output_parsed == City(name="Rome", country="Italy")
    sent = gw.upstream.received[-1]["response_format"]["json_schema"]
    assert sent["schema"]["required"] == ["name", "country"]
    with client.responses.stream(model="small", input="x") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        assert "".join(deltas) == stream.get_final_response().output_text == "a b"


def test_a_refusal_is_a_refusal_part_of_the_message(gw) -> None:
    gw.upstream.enqueue(Script(text="", refusal="I can't help with that."))
    response = gw.client().responses.create(model="small", input="something bad")
    [message] = response.output
    assert [(part.type, part.refusal) for part in message.content] == [
        ("refusal", "I can't help with that.")
    ]
    assert response.output_text == ""


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_before_any_token_keeps_its_status(gw, stream: bool) -> None:
    gw.upstream.enqueue(Script("error", status=500))
    with pytest.raises(openai.APIStatusError) as failed:
        result = gw.client().responses.create(model="small", input="x", stream=stream)
        if stream:
            list(result)
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "upstream_error"
    [row] = gw.rows()
    assert (row["endpoint"], row["status"], row["stream"]) == ("responses", 502, stream)
