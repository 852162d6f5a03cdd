"""The Responses API on the embedded Gemma 3 270M: a function tool round trip (the call made
through the grammar, its output fed back by `previous_response_id`), streamed and not."""

from __future__ import annotations

import json

import pytest

from smallfirst.config import Config
from tests.server.gateway_helpers import running_gateway

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def gw(embedded_model_path, tmp_path_factory):
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.db"
    config = Config(
        server={"ledger_url": f"sqlite:///{ledger}"},
        failover={"deadline_s": 600},  # a shared, busy CPU must not turn slow into a 504
    )
    with running_gateway(config) as running:
        yield running


@pytest.mark.parametrize("stream", [False, True])
def test_a_function_call_round_trip_on_the_embedded_model(gw, stream: bool) -> None:
    client = gw.client()
    request = {
        "model": "gemma-3-270m",
        "input": "What is the weather in Paris?",
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_output_tokens": 48,
        "temperature": 0,
    }
    if stream:
        events = list(client.responses.create(stream=True, **request))
        assert "response.function_call_arguments.delta" in [e.type for e in events]
        first = events[-1].response
    else:
        first = client.responses.create(**request)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert isinstance(json.loads(call.arguments)["city"], str)
    final = client.responses.create(
        model="gemma-3-270m",
        previous_response_id=first.id,
        tools=[WEATHER],
        max_output_tokens=16,
        temperature=0,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}],
    )
    assert final.status in ("completed", "incomplete")
    assert final.output_text.strip()
    rows = gw.rows(kind="request")[-2:]
    assert [(r["endpoint"], r["model"], r["status"]) for r in rows] == [
        ("responses", "gemma-3-270m", 200)
    ] * 2
