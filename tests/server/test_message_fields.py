"""A field inside a chat message that the chosen path cannot carry is a 400 naming its path,
in the API's own error shape; pass-through carries the message verbatim, and the fields
OpenAI documents still validate (official openai and anthropic SDKs, live gateway, a real
scripted OpenAI-compatible upstream and a real scripted Anthropic server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from smallfirst import Client
from smallfirst.config import CascadeConfig, Config, ModelConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.testing import BackgroundServer, ScriptedUpstream
from smallfirst.testing.anthropic_scripted import ScriptedAnthropic
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

HI = {"role": "user", "content": "hi"}
ECHOED = {  # an assistant answer as the openai SDK writes it back into the conversation
    "role": "assistant",
    "content": "Hello!",
    "refusal": None,
    "audio": None,
    "function_call": None,
    "tool_calls": None,
    "annotations": [],
}

CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}", "foo": 1}}
RESULT = {"tool_call_id": "c1", "content": "18C"}
PHOTO_URL = "https://example.com/cat.png"
PHOTO_LOW = {"type": "image_url", "image_url": {"url": PHOTO_URL, "detail": "low"}}


@dataclass
class Stack:
    gw: RunningGateway
    openai_up: ScriptedUpstream
    claude_up: ScriptedAnthropic
    config: Config

    def chat(self, model: str, messages: list[dict[str, Any]]) -> Any:
        return self.gw.client().chat.completions.create(
            model=model, messages=messages, max_tokens=5
        )

    def refused(self, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        with pytest.raises(openai.BadRequestError) as err:
            self.chat(model, messages)
        body = err.value.response.json()
        assert set(body) == {"error"} and body["error"]["type"] == "invalid_request_error"
        return body["error"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    openai_up, claude_up = ScriptedUpstream(), ScriptedAnthropic()
    with (
        BackgroundServer(openai_up.app) as openai_server,
        BackgroundServer(claude_up.app) as claude_server,
    ):
        config = scripted_config(openai_server.url + "/v1")
        config.models.append(
            ModelConfig(name="claude", backend="anthropic", base_url=claude_server.url)
        )
        config.cascades["ladder"] = CascadeConfig(rungs=["small", "large"])
        config.cascades["claude-first"] = CascadeConfig(rungs=["claude", "large"])
        with running_gateway(config) as gw:
            yield Stack(gw, openai_up, claude_up, config)


@pytest.mark.parametrize("model", ["claude", "cascade-ladder"])
@pytest.mark.parametrize(
    ("messages", "param", "says"),
    [
        ([{**HI, "foo": 1}], "messages[0].foo", "is unknown here"),
        (
            [{"role": "user", "content": [{"type": "text", "text": "hi", "foo": 1}]}],
            "messages[0].content[0].foo",
            "is unknown here",
        ),
        (
            [{"role": "user", "content": [{"type": "video", "video": {"url": "x"}}]}],
            "messages[0].content[0]",
            "a 'video' part",
        ),
        ([HI, {**ECHOED, "refusal": "I can't help"}], "messages[1].refusal", "only honoured"),
        (
            [HI, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", **RESULT}],
            "messages[1].tool_calls[0].function.foo",
            "is unknown here",
        ),
        (
            [HI, {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}],
            "messages[1].content[0]",
            "a 'refusal' part",
        ),
    ],
)
def test_a_message_field_the_path_cannot_carry_is_a_400_naming_it(
    stack, model, messages, param, says
) -> None:
    error = stack.refused(model, messages)
    assert error["param"] == param, error
    assert error["message"].startswith(param) and says in error["message"]
    assert stack.openai_up.received == [] and stack.claude_up.received == []


def test_pass_through_carries_the_message_verbatim(stack) -> None:
    messages = [
        {**HI, "foo": 1},
        {**ECHOED, "refusal": "I can't help"},
        {"role": "user", "content": [{"type": "text", "text": "again", "cache": True}]},
    ]
    stack.chat("small", messages)
    assert stack.openai_up.received[-1]["messages"] == messages


@pytest.mark.parametrize("model", ["claude", "cascade-ladder"])
def test_documented_fields_with_nothing_in_them_still_pass(stack, model) -> None:
    answer = stack.chat(model, [HI, ECHOED, HI])
    assert answer.choices[0].message.content


def test_an_openai_compatible_path_off_pass_through_carries_names_and_details(stack) -> None:
    stack.chat(
        "cascade-ladder", [{**HI, "name": "ann"}, ECHOED, {"role": "user", "content": [PHOTO_LOW]}]
    )
    sent = stack.openai_up.received[-1]["messages"]
    assert sent[0]["name"] == "ann" and sent[2]["content"] == [PHOTO_LOW]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([HI, {**HI, "name": "ann"}], "messages[1].name"),
        (
            [{"role": "user", "content": [{"type": "text", "text": "what?"}, PHOTO_LOW]}],
            "messages[0].content[1].image_url.detail",
        ),
    ],
)
def test_a_name_or_image_detail_anthropic_has_no_place_for_is_a_400_naming_it(
    stack, messages, param
) -> None:
    error = stack.refused("claude", messages)
    assert error["param"] == param and error["message"].startswith(param), error
    assert "message_names" in error["message"] or "image_detail" in error["message"]
    assert stack.claude_up.received == []


def test_an_image_detail_of_auto_reaches_anthropic_as_the_image(stack) -> None:
    auto = {
        "type": "image_url",
        "image_url": {"url": PHOTO_LOW["image_url"]["url"], "detail": "auto"},
    }
    stack.chat("claude", [{"role": "user", "content": [auto]}])
    [turn] = stack.claude_up.received[-1]["messages"]
    assert turn["content"] == [{"type": "image", "source": {"type": "url", "url": PHOTO_URL}}]


def test_a_cascade_passes_over_a_model_that_would_drop_the_name(stack) -> None:
    answer = stack.chat("cascade-claude-first", [{**HI, "name": "ann"}])
    assert answer.choices[0].message.content
    assert stack.claude_up.received == []
    assert stack.openai_up.received[-1]["messages"] == [{**HI, "name": "ann"}]


def test_the_messages_api_refuses_an_unknown_message_field_in_its_own_shape(stack) -> None:
    client = anthropic.Anthropic(base_url=stack.gw.url, api_key="unused", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(
            model="small",
            max_tokens=5,
            messages=[{**HI, "foo": 1}],  # type: ignore[list-item]
        )
    body = err.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "messages[0].foo" in body["error"]["message"]
    assert stack.openai_up.received == []


def test_the_python_client_refuses_a_message_field_it_cannot_carry(stack) -> None:
    with Client(stack.config, ledger=False) as client, pytest.raises(InvalidRequestError) as err:
        client.chat([HI, {**HI, "foo": 1}], model="small")
    assert err.value.param == "messages[1].foo"
    assert stack.openai_up.received == []
