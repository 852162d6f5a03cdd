"""`GET /openapi.json`: an OpenAPI 3.1 description of every endpoint the app serves.

The paths come from the app's own route table, so a route cannot be mounted and left out of
the document (a route opts out where it is declared, with Starlette's `include_in_schema=False`,
as the dashboard's browser pages do). What each operation takes and answers is described in
`OPERATIONS`; the request and error schemas are generated from the pydantic models that
validate requests (`smallfirst.wire.schemas` and the endpoints' own bodies), so the document
says exactly what the gateway checks; fields it does not check are allowed, as they pass
through to the model. Clients and fuzzers (schemathesis, in the tests) read it to know what a
valid request looks like.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from smallfirst import __version__
from smallfirst.server.feedback_endpoint import FeedbackBody
from smallfirst.server.metrics import CONTENT_TYPE as METRICS_TYPE
from smallfirst.server.pipelines_endpoint import PipelineBody
from smallfirst.server.tasks_endpoint import TaskBody
from smallfirst.wire.anthropic_schemas import AnthropicErrorBody, MessagesBody
from smallfirst.wire.responses_schemas import ResponsesBody
from smallfirst.wire.schemas import ChatBody, CompletionBody, EmbeddingBody, ErrorBody

REF = "#/components/schemas/{model}"
STATUSES = {
    "400": "invalid request",
    "401": "missing, unknown or revoked API key",
    "404": "unknown model, task, pipeline or response",
    "413": "body over server.max_body_bytes",
    "429": "rate limit or budget",
    "502": "the model's server failed",
    "503": "a model, Redis or the key store is unavailable",
    "504": "the model's server timed out",
}
JSON = {"application/json": {"schema": {"type": "object"}}}
SSE = {"text/event-stream": {"schema": {"type": "string"}}}
TEXT = {METRICS_TYPE.split(";")[0]: {"schema": {"type": "string"}}}


@dataclass(frozen=True, slots=True)
class Operation:
    """What one method on one path takes and answers."""

    summary: str
    body: type[BaseModel] | None = None
    """The JSON request body, as the endpoint validates it (None: no body)."""
    answer: dict[str, Any] = field(default_factory=lambda: JSON)
    """The 200 answer's media types."""
    errors: tuple[str, ...] = tuple(STATUSES)
    error_body: type[BaseModel] = ErrorBody


GET_ERRORS = ("401",)
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("post", "/v1/chat/completions"): Operation(
        "Chat completion (OpenAI-compatible)", ChatBody, JSON | SSE
    ),
    ("post", "/v1/completions"): Operation(
        "Text completion (OpenAI-compatible)", CompletionBody, JSON | SSE
    ),
    ("post", "/v1/embeddings"): Operation("Embeddings (OpenAI-compatible)", EmbeddingBody),
    ("post", "/v1/responses"): Operation(
        "Responses API (OpenAI-compatible)", ResponsesBody, JSON | SSE
    ),
    ("get", "/v1/responses/{response_id}"): Operation(
        "A stored response (`store: true`), to the key that made it",
        errors=("401", "404", "503"),
    ),
    ("post", "/v1/messages"): Operation(
        "Messages API (Anthropic-compatible)",
        MessagesBody,
        JSON | SSE,
        error_body=AnthropicErrorBody,
    ),
    ("post", "/v1/feedback"): Operation(
        "Feedback on a request, for learning (`learn:`)", FeedbackBody
    ),
    ("post", "/v1/tasks/{name}"): Operation("Run a configured task on one input", TaskBody),
    ("post", "/v1/pipelines/{name}"): Operation(
        "Run a configured pipeline on one document", PipelineBody
    ),
    ("get", "/v1/models"): Operation("Configured models and routers", errors=GET_ERRORS),
    ("get", "/health"): Operation("Liveness and configuration summary", errors=GET_ERRORS),
    ("get", "/metrics"): Operation(
        "Prometheus metrics (with auth on, for the admin token)", answer=TEXT, errors=GET_ERRORS
    ),
    ("get", "/openapi.json"): Operation("This document", errors=()),
}


def documented_routes(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str, Route]]:
    """(method, path, route) for every route the document covers: each `Route` not opted out
    with `include_in_schema=False`, inside mounted routers too; HEAD goes with its GET."""
    for route in routes:
        if isinstance(route, Mount):  # a mounted router's routes (static files have none)
            prefix = route.path
            for method, path, inner in documented_routes(route.routes):
                yield method, prefix + path, inner
        elif isinstance(route, Route) and route.include_in_schema:
            methods = route.methods or {"GET"}
            for method in sorted(m.lower() for m in methods if m != "HEAD" or "GET" not in methods):
                yield method, route.path_format, route


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document for an app with these routes (`app.routes`)."""
    paths: dict[str, dict[str, Any]] = {}
    bodies: list[type[BaseModel]] = []
    for method, path, route in documented_routes(routes):
        operation = OPERATIONS.get((method, path)) or _undescribed(route)
        paths.setdefault(path, {})[method] = _operation(operation, route)
        bodies += [m for m in (operation.body, operation.error_body) if m and m not in bodies]
    return {
        "openapi": "3.1.0",
        "info": {"title": "smallfirst gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": _schemas(tuple(bodies)),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


def _undescribed(route: Route) -> Operation:
    """A route an embedding app or plugin added: its docstring's first line, JSON out."""
    doc = inspect.getdoc(route.endpoint) or route.path_format
    return Operation(doc.splitlines()[0], errors=())


def _operation(operation: Operation, route: Route) -> dict[str, Any]:
    streams = "text/event-stream" in operation.answer
    description = "the answer (JSON, or server-sent events with stream: true)" if streams else "ok"
    error = {"$ref": REF.format(model=operation.error_body.__name__)}
    spec: dict[str, Any] = {
        "summary": operation.summary,
        "responses": {
            "200": {"description": description, "content": operation.answer},
            **{
                status: {
                    "description": STATUSES[status],
                    "content": {"application/json": {"schema": error}},
                }
                for status in operation.errors
            },
        },
    }
    if route.param_convertors:
        spec["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.param_convertors
        ]
    if operation.body is not None:
        ref = {"$ref": REF.format(model=operation.body.__name__)}
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }
    return spec


@cache
def _schemas(bodies: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """Request bodies as they are validated, error bodies as they are sent."""
    errors = (ErrorBody, AnthropicErrorBody)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "serialization" if model in errors else "validation") for model in bodies
    ]
    if not models:
        return {}
    _, document = models_json_schema(models, ref_template=REF)
    return document.get("$defs", {})


async def openapi_json(request: Request) -> Response:
    """Built from the app's routes on the first request, then served as is."""
    state = request.app.state
    body = getattr(state, "openapi_body", None)
    if body is None:
        body = state.openapi_body = orjson.dumps(openapi_document(request.app.routes))
    return Response(body, media_type="application/json")
