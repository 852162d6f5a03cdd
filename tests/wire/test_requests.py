"""Upstream request bodies carry what the request said: the schema's name, description and
`strict`, and the token limit under the name the client used."""

from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message
from smallfirst.wire.requests import chat_body, completion_body
from smallfirst.wire.responses_schemas import ResponsesBody
from smallfirst.wire.schemas import ChatBody

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}}


def chat(params: GenerationParams) -> dict:
    return chat_body("m", ChatRequest([Message("user", "hi")], params), stream=False)


def test_a_schema_given_in_code_is_strict_and_named_output() -> None:
    assert chat(GenerationParams(json_schema=SCHEMA))["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }


def test_a_clients_schema_fields_are_carried_as_given() -> None:
    body = ChatBody.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "thing", "description": "A thing", "schema": SCHEMA},
            },
            "max_completion_tokens": 9,
        }
    )
    sent = chat(body.params())
    assert sent["response_format"]["json_schema"] == {
        "name": "thing",
        "description": "A thing",
        "schema": SCHEMA,
    }
    assert sent["max_completion_tokens"] == 9 and "max_tokens" not in sent


def test_a_responses_format_is_carried_as_given() -> None:
    body = ResponsesBody.model_validate(
        {
            "model": "m",
            "input": "hi",
            "text": {
                "format": {"type": "json_schema", "name": "x", "schema": SCHEMA, "strict": False}
            },
        }
    )
    assert chat(body.params())["response_format"]["json_schema"] == {
        "name": "x",
        "schema": SCHEMA,
        "strict": False,
    }


def test_completions_know_only_max_tokens() -> None:
    params = GenerationParams(max_tokens=7, max_tokens_name="max_completion_tokens")
    sent = completion_body("m", CompletionRequest("hi", params), stream=False)
    assert sent["max_tokens"] == 7 and "max_completion_tokens" not in sent
