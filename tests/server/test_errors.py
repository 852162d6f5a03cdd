"""Bad input never gets a 500: each case is an OpenAI-shaped error with the right status,
and (for model endpoints) a ledger row."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.models.base import StreamingProvider
from smallfirst.models.registry import BACKENDS
from tests.server.gateway_helpers import running_gateway, scripted_config

OK_MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(scripted):
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url, max_body_bytes=4096)) as running:
        yield running


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400(gw, content, needle) -> None:
    response = httpx.post(gw.url + "/v1/chat/completions", content=content)
    error = _error(response, 400)
    assert error["type"] == "invalid_request_error" and needle in error["message"]
    assert response.headers["x-smallfirst-request-id"].startswith("req-")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": OK_MESSAGES}, "model"),
        ({"model": "small"}, "messages"),
        ({"model": "small", "messages": []}, "messages"),
        ({"model": "small", "messages": "hi"}, "messages"),
        ({"model": "small", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "small", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": 7, "messages": OK_MESSAGES}, "model"),
        ({"model": "small", "messages": OK_MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "small", "messages": OK_MESSAGES, "temperature": 9}, "temperature"),
        ({"model": "small", "messages": OK_MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "small", "messages": OK_MESSAGES, "max_tokens": "many"}, "max_tokens"),
        ({"model": "small", "messages": OK_MESSAGES, "stream": "yes"}, "stream"),
        ({"model": "small", "messages": OK_MESSAGES, "n": 3}, "n"),
        ({"model": "small", "messages": OK_MESSAGES, "stop": 5}, "stop"),
        (
            {"model": "small", "messages": OK_MESSAGES, "response_format": {"type": "xml"}},
            "response_format",
        ),
    ],
)
def test_missing_fields_and_wrong_types_are_400_naming_the_field(gw, body, param) -> None:
    error = _error(httpx.post(gw.url + "/v1/chat/completions", json=body), 400)
    assert error["param"] == param
    assert error["message"].startswith(param) or error["param"] == "response_format"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "small"}, "prompt"),
        ({"model": "small", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "small", "prompt": 3}, "prompt"),
    ],
)
def test_bad_completions_bodies_are_400(gw, body, param) -> None:
    error = _error(httpx.post(gw.url + "/v1/completions", json=body), 400)
    assert error["param"] == param


def test_unknown_model_and_unknown_router_kind_are_404(gw) -> None:
    error = _error(
        httpx.post(
            gw.url + "/v1/chat/completions", json={"model": "gpt-9", "messages": OK_MESSAGES}
        ),
        404,
    )
    assert error["code"] == "model_not_found" and "small, large" in error["message"]
    error = _error(
        httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "router-nosuchkind-0.5", "messages": OK_MESSAGES},
        ),
        404,
    )
    assert "nosuchkind" in error["message"]


def test_oversize_body_is_413_with_or_without_content_length(gw) -> None:
    big = {"model": "small", "messages": [{"role": "user", "content": "x" * 10_000}]}
    error = _error(httpx.post(gw.url + "/v1/chat/completions", json=big), 413)
    assert error["code"] == "request_too_large" and "max_body_bytes" in error["message"]

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    error = _error(httpx.post(gw.url + "/v1/chat/completions", content=chunks()), 413)
    assert error["code"] == "request_too_large"


def test_unknown_paths_and_methods_are_openai_shaped(gw) -> None:
    error = _error(httpx.get(gw.url + "/v1/nothing"), 404)
    assert "/v1/nothing" in error["message"]
    _error(httpx.get(gw.url + "/v1/chat/completions"), 405)


def test_every_bad_request_is_a_ledger_row(gw) -> None:
    httpx.post(gw.url + "/v1/chat/completions", content=b"{")
    httpx.post(gw.url + "/v1/chat/completions", json={"model": "small"})
    httpx.post(gw.url + "/v1/completions", json={"model": "nope", "prompt": "x"})
    httpx.post(gw.url + "/v1/embeddings", json={"model": "minilm"})
    rows = gw.rows()
    assert [(r["endpoint"], r["status"]) for r in rows] == [
        ("chat", 400),
        ("chat", 400),
        ("completions", 404),
        ("embeddings", 400),
    ]
    assert rows[2]["requested_model"] == "nope" and rows[2]["model"] is None
    assert all(r["error"] for r in rows)


class ExplodingProvider(StreamingProvider):
    """A backend with a bug: anything but a SmallfirstError escapes it."""

    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name

    async def chat(self, request):
        raise RuntimeError("boom")


def test_a_backend_bug_is_an_openai_shaped_500_and_a_row(monkeypatch) -> None:
    monkeypatch.setitem(BACKENDS, "replay", ExplodingProvider)
    config = Config(models=[ModelConfig(name="buggy", backend="replay")])
    with running_gateway(config) as gw:
        response = httpx.post(
            gw.url + "/v1/chat/completions", json={"model": "buggy", "messages": OK_MESSAGES}
        )
        error = _error(response, 500)
        assert error["type"] == "server_error" and "RuntimeError: boom" in error["message"]
        assert response.headers["x-smallfirst-model"] == "buggy"
        [row] = gw.rows()
        assert (
            row["status"] == 500
            and row["error"] == "server_error: internal error: RuntimeError: boom"
        )
