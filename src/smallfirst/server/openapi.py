"""`GET /openapi.json`: an OpenAPI 3.0 description of the gateway's public endpoints.

Written by hand (the app is plain Starlette) and kept small: the fields the gateway itself
checks (`schemas.py`), with others allowed because they pass through to the model. Its job is
to let clients and fuzzers (schemathesis, in the tests) know what a valid request looks like;
it is checked against the real app by those tests, so it cannot drift unnoticed.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from smallfirst import __version__

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
        }
    },
}
SAMPLING = {
    "model": {"type": "string", "minLength": 1, "example": "small"},
    "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
    "max_completion_tokens": {"type": "integer", "minimum": 1, "nullable": True},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
    "stop": {
        "nullable": True,
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    },
    "seed": {"type": "integer", "nullable": True},
    "n": {"type": "integer", "minimum": 1, "maximum": 1},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "nullable": True},
}
CHAT = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        **SAMPLING,
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {
                    "role": {
                        "type": "string",
                        "enum": ["system", "developer", "user", "assistant", "tool"],
                    },
                    "content": {"type": "string", "nullable": True},
                },
            },
        },
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20, "nullable": True},
    },
}
COMPLETION = {
    "type": "object",
    "required": ["model", "prompt"],
    "properties": {
        **SAMPLING,
        "prompt": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
            ]
        },
        "logprobs": {"type": "integer", "minimum": 0, "maximum": 5, "nullable": True},
    },
}
EMBEDDING = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
    },
}
ERRORS = {
    status: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for status, text in {
        "400": "invalid request",
        "401": "missing, unknown or revoked API key",
        "404": "unknown model",
        "413": "body over server.max_body_bytes",
        "429": "rate limit or budget",
        "502": "the model's server failed",
        "503": "a model, Redis or the key store is unavailable",
        "504": "the model's server timed out",
    }.items()
}


def _post(summary: str, schema: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
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
                **ERRORS,
            },
        }
    }


def _get(summary: str) -> dict[str, Any]:
    ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {"get": {"summary": summary, "responses": {"200": ok, "401": ERRORS["401"]}}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "smallfirst gateway", "version": __version__},
        "paths": {
            "/v1/chat/completions": _post("Chat completion (OpenAI-compatible)", "ChatRequest"),
            "/v1/completions": _post("Text completion (OpenAI-compatible)", "CompletionRequest"),
            "/v1/embeddings": _post("Embeddings (OpenAI-compatible)", "EmbeddingRequest"),
            "/v1/models": _get("Configured models and routers"),
            "/health": _get("Liveness and configuration summary"),
        },
        "components": {
            "schemas": {
                "ChatRequest": CHAT,
                "CompletionRequest": COMPLETION,
                "EmbeddingRequest": EMBEDDING,
                "Error": ERROR,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


async def openapi_json(_request: Request) -> Response:
    return Response(orjson.dumps(openapi_document()), media_type="application/json")
