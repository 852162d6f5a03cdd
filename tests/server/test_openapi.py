"""schemathesis against `/openapi.json` of a running gateway: requests generated from the
document (and deliberately invalid ones) never get a 5xx, and the answers match the document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from smallfirst.server import create_app
from smallfirst.server.openapi import openapi_document
from tests.server.gateway_helpers import running_gateway, scripted_config

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis missing: .[dev]")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def test_gateway_keeps_its_openapi_promises(scripted) -> None:
    """Every operation, with valid (positive) and invalid (negative) generated requests."""
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        schema = schemathesis.openapi.from_url(gw.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        tested = {(operation.method.lower(), operation.path) for operation in operations}
        # schemathesis leaves out the URL it read the document from
        assert tested == app_operations(gw.app) - {("get", "/openapi.json")}
        statuses: list[int] = []
        for operation in operations:
            modes = [GenerationMode.POSITIVE]
            if operation.method.upper() == "POST":  # a GET without parameters has no invalid form
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:

                @given(operation.as_strategy(generation_mode=mode))
                @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
                def check(case) -> None:
                    response = case.call(base_url=gw.url, timeout=30)
                    statuses.append(response.status_code)
                    case.validate_response(response, checks=CHECKS)

                check()
    assert len(statuses) > 100 and 200 in statuses and 400 in statuses


def app_operations(app: Starlette) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, read from Starlette's own route table;
    only routes declared `include_in_schema=False` are left out."""
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.include_in_schema:
            methods = route.methods or {"GET"}
            found |= {(m.lower(), route.path_format) for m in methods if m != "HEAD"}
    return found


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item}


def test_the_document_is_served_and_covers_every_route(scripted) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        served = httpx.get(gw.url + "/openapi.json").json()
        app = gw.app
    assert served == openapi_document(app.routes)
    assert document_operations(served) == app_operations(app)
    assert {
        ("post", "/v1/tasks/{name}"),
        ("post", "/v1/pipelines/{name}"),
        ("get", "/v1/responses/{response_id}"),
        ("get", "/metrics"),
    } <= document_operations(served)
    left_out = {r.path for r in app.routes if isinstance(r, Route) and not r.include_in_schema}
    assert left_out and all(path.startswith("/dashboard") for path in left_out)


def test_every_request_body_is_its_pydantic_model() -> None:
    document = openapi_document(create_app(scripted_config("http://127.0.0.1:9/v1")).routes)
    schemas = document["components"]["schemas"]
    posts = {path: item["post"] for path, item in document["paths"].items() if "post" in item}
    bodies = {
        path: op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for path, op in posts.items()
    }
    assert bodies["/v1/tasks/{name}"] == "TaskBody"
    assert bodies["/v1/pipelines/{name}"] == "PipelineBody"
    assert bodies["/v1/chat/completions"] == "ChatBody"
    assert set(bodies) == set(posts) and set(bodies.values()) <= set(schemas)
    assert set(schemas["TaskBody"]["properties"]) == {"input", "model", "context"}
    [name] = document["paths"]["/v1/tasks/{name}"]["post"]["parameters"]
    assert name == {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]


def test_a_route_added_later_is_documented_too() -> None:
    async def ping(_request: Any) -> Response:
        """Answer a ping (a plugin's route)."""
        return Response("pong")

    app = create_app(scripted_config("http://127.0.0.1:9/v1"))
    app.router.routes.append(Route("/plugin/ping/{who}", ping, methods=["GET"]))
    document = openapi_document(app.routes)
    operation = document["paths"]["/plugin/ping/{who}"]["get"]
    assert operation["summary"] == "Answer a ping (a plugin's route)."
    assert operation["parameters"][0]["name"] == "who"
    assert document_operations(document) == app_operations(app)
