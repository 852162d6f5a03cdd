"""/openapi.json is generated from the request models, so it cannot drift from what the
gateway validates."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from smallfirst.config import Config, ModelConfig
from smallfirst.errors import InvalidRequestError, RateLimitError, SmallfirstError
from smallfirst.server import create_app
from smallfirst.server.openapi import openapi_document
from smallfirst.wire.schemas import (
    ChatBody,
    CompletionBody,
    EmbeddingBody,
    ErrorBody,
    field_path,
    validate,
)


def gateway_document() -> dict[str, Any]:
    """The document of a gateway app (built without I/O: no server runs)."""
    model = ModelConfig(name="m", backend="openai", base_url="http://127.0.0.1:9/v1", tier="small")
    return openapi_document(create_app(Config(models=[model])).routes)


@pytest.mark.parametrize("model", [ChatBody, CompletionBody, EmbeddingBody, ErrorBody])
def test_the_document_holds_each_model_s_own_schema(model: type[BaseModel]) -> None:
    schemas = gateway_document()["components"]["schemas"]
    published = schemas[model.__name__]
    assert set(published["properties"]) == set(model.model_fields)
    assert published["required"] == [
        name for name, field in model.model_fields.items() if field.is_required()
    ]


def test_every_ref_points_at_a_published_schema() -> None:
    document = gateway_document()
    names = set(document["components"]["schemas"])
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.extend([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs and {ref.removeprefix("#/components/schemas/") for ref in refs} <= names


@pytest.mark.parametrize("error", [InvalidRequestError("bad", param="model"), RateLimitError("x")])
def test_the_error_schema_describes_what_errors_send(error: SmallfirstError) -> None:
    assert ErrorBody.model_validate(error.to_openai()).error.message == error.message


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        (("model",), "model"),
        (("messages", 0, "role"), "messages[0].role"),
        (
            ("messages", 0, "content", 1, "image_url", "detail"),
            "messages[0].content[1].image_url.detail",
        ),
        (("input", 2), "input[2]"),
    ],
)
def test_a_field_path_has_one_spelling(parts: tuple[str | int, ...], path: str) -> None:
    assert field_path(parts) == path


def test_a_validation_error_names_its_field_in_that_spelling() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    with pytest.raises(InvalidRequestError) as err:
        validate(ChatBody, body)
    assert err.value.param == "messages[0].content[0].text"
    assert err.value.message.startswith("messages[0].content[0].text: ")
