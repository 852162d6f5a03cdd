"""Bad input and small leaks from the probe of issue 16 (items 7 and 8): each is a 4xx in the
OpenAI shape, never a 500; a client gone during its upload is a 499 row without a traceback;
with auth on nothing answers anonymously beyond /health's status; a 502 names the model, not
the internal address; unknown /v1 paths are ledger rows."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from smallfirst.config import FailoverConfig
from smallfirst.testing import free_port
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(scripted) -> Iterator[RunningGateway]:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as running:
        yield running


def openai_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def wait_for_rows(gw: RunningGateway, count: int) -> list[dict[str, Any]]:
    """Rows of requests that end without an answer reaching anyone (the client left)."""
    for _ in range(200):
        rows = gw.rows()
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"expected {count} ledger rows, got {gw.rows()}")


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "text", "text": 5}, "messages[0].content[0].text"),
        ({"type": "text", "text": None}, "messages[0].content[0].text"),
        ({"type": "text", "text": {}}, "messages[0].content[0].text"),
        ({"type": "text"}, "messages[0].content[0].text"),
        ({}, "messages[0].content[0].type"),
        ({"type": 5, "text": "x"}, "messages[0].content[0].type"),
        (None, "messages[0].content[0]"),
    ],
)
def test_a_bad_content_part_is_a_400_naming_the_field(gw, part: Any, param: str) -> None:
    messages = [{"role": "user", "content": [part]}]
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="small", messages=messages)
    error = openai_error(caught.value)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"].startswith(param)
    [row] = gw.rows()
    assert row["status"] == 400


def test_good_content_parts_still_pass_through(gw, scripted) -> None:
    parts = [
        {"type": "text", "text": "what is in "},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this picture?"},
    ]
    reply = gw.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": parts}]
    )
    assert reply.choices[0].message.content
    upstream, _base_url = scripted
    assert upstream.received[-1]["messages"][0]["content"] == parts


def test_a_client_gone_during_the_upload_is_a_499_row_without_a_traceback(gw, caplog) -> None:
    caplog.set_level(logging.INFO)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gw.server.port), timeout=10) as sock:
        sock.sendall(head + b'{"model": "small", "mess')
        time.sleep(0.2)  # let the gateway start reading the body
    [row] = wait_for_rows(gw, 1)
    assert row["status"] == 499 and row["error"].startswith("client_closed:")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "query",
    ["since=1e20", "until=1e18", "since=99999999999w", "since=0.5&until=1e300", "since=1e308"],
)
def test_an_out_of_range_dashboard_time_is_a_400(gw, query: str) -> None:
    response = httpx.get(f"{gw.url}/dashboard/api/summary?{query}")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] in ("since", "until")


@pytest.fixture
def authed(scripted, monkeypatch) -> Iterator[RunningGateway]:
    monkeypatch.setenv("SMALLFIRST_ADMIN_TOKEN", "admin-secret")
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url), auth=True) as running:
        yield running


def test_with_auth_on_models_needs_a_key(authed) -> None:
    with pytest.raises(openai.AuthenticationError):
        authed.client().models.list()
    with pytest.raises(openai.AuthenticationError):
        authed.client(api_key="sf-nope-nope").models.list()
    _key, secret = authed.create_key("team")
    assert "small" in [model.id for model in authed.client(secret).models.list()]
    assert [(r["endpoint"], r["status"]) for r in authed.rows()] == [("models", 401)] * 2


def test_with_auth_on_metrics_needs_the_admin_token(authed) -> None:
    _key, secret = authed.create_key("team")
    authed.client(secret).chat.completions.create(model="small", messages=MESSAGES)
    for headers in ({}, {"authorization": f"Bearer {secret}"}):
        response = httpx.get(authed.url + "/metrics", headers=headers)
        assert response.status_code == 401
        assert "SMALLFIRST_ADMIN_TOKEN" in response.json()["error"]["message"]
    admin = {"authorization": "Bearer admin-secret"}
    metrics = httpx.get(authed.url + "/metrics", headers=admin)
    assert metrics.status_code == 200 and "smallfirst_cost_usd_total" in metrics.text


def test_with_auth_on_health_says_only_ok(authed) -> None:
    assert httpx.get(authed.url + "/health").json() == {"status": "ok"}
    full = httpx.get(authed.url + "/health", headers={"authorization": "Bearer admin-secret"})
    assert full.json()["models"] == ["small", "large"] and full.json()["auth"] is True


def test_a_502_names_the_model_not_the_internal_address(tmp_path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    failover = FailoverConfig(backoff_s=0.0, failure_threshold=100)  # every request tries
    with running_gateway(scripted_config(down).model_copy(update={"failover": failover})) as gw:
        client = gw.client()
        calls = [
            lambda: client.chat.completions.create(model="small", messages=MESSAGES),
            lambda: client.chat.completions.create(model="small", messages=MESSAGES, stream=True),
            lambda: client.completions.create(model="small", prompt="hi"),
            lambda: client.embeddings.create(model="small", input="hi"),
        ]
        for call in calls:
            with pytest.raises(openai.APIStatusError) as caught:
                call()
            assert caught.value.status_code == 502
            error = openai_error(caught.value)
            assert "upstream model 'small' is unreachable" in error["message"]
            assert "127.0.0.1" not in caught.value.response.text
        rows = gw.rows(kind="request")
        hops = gw.rows(kind="hop")
    assert [row["status"] for row in rows] == [502] * 4
    # The detail is for operators: the ledger row (and the log) say why; the retries' hop
    # rows name the model only.
    assert all("upstream model 'small' is unreachable" in row["error"] for row in rows)
    assert "Cannot connect to host 127.0.0.1" in rows[0]["error"]
    assert hops and all("127.0.0.1" not in (row["error"] or "") for row in hops)


def test_unknown_v1_paths_and_wrong_methods_are_ledger_rows(gw) -> None:
    client = gw.client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.post("/nothing/here", cast_to=object, body={"model": "small"})
    assert "/v1/nothing/here" in openai_error(caught.value)["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        client.get("/chat/completions", cast_to=object)
    assert caught.value.status_code == 405
    assert httpx.get(gw.url + "/not-v1").status_code == 404  # outside /v1: no row
    rows = gw.rows()
    assert [(r["endpoint"], r["status"]) for r in rows] == [("other", 404), ("other", 405)]
    assert all(r["error"].startswith("invalid_request_error: ") for r in rows)
