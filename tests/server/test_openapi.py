"""schemathesis against `/openapi.json` of a running gateway: requests generated from the
document (and deliberately invalid ones) never get a 5xx, and the answers match the document."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

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
        assert len(operations) == 8
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


def test_the_document_is_served_and_names_every_public_endpoint(scripted) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        served = httpx.get(gw.url + "/openapi.json").json()
    assert served == openapi_document()
    assert set(served["paths"]) == {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/v1/feedback",
        "/v1/models",
        "/health",
    }
