"""Upstream request bodies carry what the request said: the schema's name, description and
`strict`."""

from smallfirst.types import ChatRequest, GenerationParams, Message
from smallfirst.wire.requests import chat_body
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
        }
    )
    sent = chat(body.params())
    assert sent["response_format"]["json_schema"] == {
        "name": "thing",
        "description": "A thing",
        "schema": SCHEMA,
    }


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
