"""`GET /openapi.json`: an OpenAPI 3.1 description of the gateway's public endpoints.

The request and error schemas are generated from the pydantic models that validate requests
(`smallfirst.wire.schemas`), so the document says exactly what the gateway checks; fields it
does not check are allowed, as they pass through to the model. Clients and fuzzers
(schemathesis, in the tests) read it to know what a valid request looks like.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from smallfirst import __version__
from smallfirst.server.feedback_endpoint import FeedbackBody
from smallfirst.wire.anthropic_schemas import AnthropicErrorBody, MessagesBody
from smallfirst.wire.responses_schemas import ResponsesBody
from smallfirst.wire.schemas import ChatBody, CompletionBody, EmbeddingBody, ErrorBody

REF = "#/components/schemas/{model}"
STATUSES = {
    "400": "invalid request",
    "401": "missing, unknown or revoked API key",
    "404": "unknown model",
    "413": "body over server.max_body_bytes",
    "429": "rate limit or budget",
    "502": "the model's server failed",
    "503": "a model, Redis or the key store is unavailable",
    "504": "the model's server timed out",
}


def _errors(body: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model=body)}
    return {
        status: {"description": text, "content": {"application/json": {"schema": schema}}}
        for status, text in STATUSES.items()
    }


ERRORS = _errors("ErrorBody")


def _post(summary: str, schema: str, errors: dict[str, Any] = ERRORS) -> dict[str, Any]:
    ref = {"$ref": REF.format(model=schema)}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
            "responses": {
                "200": {
                    "description": "the answer (JSON, or server-sent events with stream: true)",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **errors,
            },
        }
    }


def _get(summary: str) -> dict[str, Any]:
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {"get": {"summary": summary, "responses": {"200": ok, "401": ERRORS["401"]}}}


def _schemas() -> dict[str, Any]:
    """Request bodies as they are validated, the error body as it is sent."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ChatBody, "validation"),
        (CompletionBody, "validation"),
        (EmbeddingBody, "validation"),
        (ResponsesBody, "validation"),
        (MessagesBody, "validation"),
        (FeedbackBody, "validation"),
        (ErrorBody, "serialization"),
        (AnthropicErrorBody, "serialization"),
    ]
    _, document = models_json_schema(models, ref_template=REF)
    return document["$defs"]


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "smallfirst gateway", "version": __version__},
        "paths": {
            "/v1/chat/completions": _post("Chat completion (OpenAI-compatible)", "ChatBody"),
            "/v1/completions": _post("Text completion (OpenAI-compatible)", "CompletionBody"),
            "/v1/embeddings": _post("Embeddings (OpenAI-compatible)", "EmbeddingBody"),
            "/v1/responses": _post("Responses API (OpenAI-compatible)", "ResponsesBody"),
            "/v1/messages": _post(
                "Messages API (Anthropic-compatible)",
                "MessagesBody",
                _errors("AnthropicErrorBody"),
            ),
            "/v1/feedback": _post("Feedback on a request, for learning (`learn:`)", "FeedbackBody"),
            "/v1/models": _get("Configured models and routers"),
            "/health": _get("Liveness and configuration summary"),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


async def openapi_json(_request: Request) -> Response:
    return Response(orjson.dumps(openapi_document()), media_type="application/json")
