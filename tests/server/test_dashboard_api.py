"""The dashboard's HTTP side on a real server: JSON panels, bad input, and auth like the API."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from smallfirst.ledger import KeyStore, LedgerStore
from smallfirst.server.auth import Authenticator
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer
from tests.server.dashboard_seed import seed_ledger


@pytest.fixture
def store(tmp_path) -> Iterator[LedgerStore]:
    ledger = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_ledger(ledger, time.time())
    yield ledger
    ledger.close()


def _serve(store: LedgerStore, auth: bool) -> BackgroundServer:
    app = Starlette()
    mount_dashboard(app, store.engine, Authenticator(KeyStore(store), required=auth))
    return BackgroundServer(app)


@pytest.fixture
def open_client(store: LedgerStore) -> Iterator[httpx.Client]:
    with _serve(store, auth=False) as server, httpx.Client(base_url=server.url) as client:
        yield client


def test_page_and_assets_are_served(open_client: httpx.Client) -> None:
    page = open_client.get("/dashboard")
    assert page.status_code == 200
    assert '<script src="/dashboard/static/dashboard.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'data-auth="off"' in page.text
    script = open_client.get("/dashboard/static/charts.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert open_client.get("/dashboard/", follow_redirects=False).status_code == 307


def test_summary_default_window_is_last_day(open_client: httpx.Client) -> None:
    body = open_client.get("/dashboard/api/summary").json()
    assert body["requests"] == 5
    assert body["cost_usd"] == pytest.approx(0.08)
    assert body["savings_usd"] == pytest.approx(0.03)
    assert body["escalation_rate"] == pytest.approx(0.2)
    assert body["range"]["until"] - body["range"]["since"] == pytest.approx(86400)


def test_since_changes_what_is_counted(open_client: httpx.Client) -> None:
    def requests(**params: str) -> int:
        response = open_client.get("/dashboard/api/summary", params=params)
        assert response.status_code == 200, response.text
        return response.json()["requests"]

    assert requests(since="90m") == 1
    assert requests(since="all") == 6
    assert requests(since=str(time.time() - 3 * 86400)) == 6
    assert requests(since="2020-01-01T00:00:00Z", until="2020-01-02") == 0


def test_every_panel_answers(open_client: httpx.Client) -> None:
    assert len(open_client.get("/dashboard/api/series").json()["buckets"]) >= 90
    assert {r["route"] for r in open_client.get("/dashboard/api/routes").json()} == {
        "auto",
        "direct",
    }
    assert len(open_client.get("/dashboard/api/latency").json()) == 2
    assert [k["key_name"] for k in open_client.get("/dashboard/api/keys?limit=1").json()] == ["bob"]
    recent = open_client.get("/dashboard/api/recent", params={"limit": 2}).json()
    assert [r["request_id"] for r in recent] == ["r1", "r2"]
    everything = open_client.get("/dashboard/api/all").json()
    assert set(everything) == {
        "summary", "series", "routes", "latency", "keys", "recent", "tasks"
    }  # fmt: skip
    assert open_client.get("/dashboard/api/all").headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"since": "-5"}, "since", "not a valid time"),
        ({"until": "2026-13-45"}, "until", "not a valid time"),
        ({"since": "1h", "until": "2h"}, "since", "must be before"),
        ({"limit": "0"}, "limit", "from 1 to 500"),
        ({"limit": "ten"}, "limit", "from 1 to 500"),
        ({"key": "sf-abc-secret"}, "key", "do not go in URLs"),
    ],
)
def test_bad_input_is_a_clear_400(
    open_client: httpx.Client, params: dict[str, str], param: str, words: str
) -> None:
    response = open_client.get("/dashboard/api/recent", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_unknown_panel_is_404(open_client: httpx.Client) -> None:
    response = open_client.get("/dashboard/api/nope")
    assert response.status_code == 404
    assert "summary" in response.json()["error"]["message"]


@pytest.fixture
def secured(store: LedgerStore) -> Iterator[tuple[httpx.Client, str, KeyStore]]:
    keys = KeyStore(store)
    _, secret = keys.create("ops")
    with _serve(store, auth=True) as server, httpx.Client(base_url=server.url) as client:
        yield client, secret, keys


def test_api_needs_a_key_when_auth_is_on(secured: tuple[httpx.Client, str, KeyStore]) -> None:
    client, secret, _ = secured
    missing = client.get("/dashboard/api/summary")
    assert missing.status_code == 401
    assert client.get("/dashboard/api/nope").status_code == 401  # auth before anything else
    assert missing.json()["error"]["type"] == "authentication_error"
    wrong = client.get("/dashboard/api/summary", headers={"Authorization": "Bearer sf-x-y"})
    assert wrong.status_code == 401
    good = client.get("/dashboard/api/summary", headers={"Authorization": f"Bearer {secret}"})
    assert good.status_code == 200
    assert good.json()["requests"] == 5


def test_revoked_key_ends_keys_and_sessions(secured: tuple[httpx.Client, str, KeyStore]) -> None:
    client, secret, keys = secured
    browser = httpx.Client(base_url=str(client.base_url))
    browser.post("/dashboard/login", data={"key": secret})
    assert browser.get("/dashboard/api/summary").status_code == 200
    keys.revoke("ops")
    deadline = time.monotonic() + 15  # the gateway re-reads keys every few seconds
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = client.get(
            "/dashboard/api/summary", headers={"Authorization": f"Bearer {secret}"}
        ).status_code
        time.sleep(0.2)
    assert status == 401
    assert browser.get("/dashboard/api/summary").status_code == 401
    browser.close()


def test_browser_signs_in_with_the_form(
    secured: tuple[httpx.Client, str, KeyStore], caplog: pytest.LogCaptureFixture
) -> None:
    client, secret, _ = secured
    caplog.set_level(logging.DEBUG)
    first = client.get("/dashboard")
    assert first.status_code == 200
    assert 'action="/dashboard/login"' in first.text
    assert "dashboard.js" not in first.text

    refused = client.post("/dashboard/login", data={"key": "sf-nope-nope"})
    assert refused.status_code == 401
    assert "not valid" in refused.text
    oversized = client.post("/dashboard/login", data={"key": secret, "pad": "x" * 5000})
    assert oversized.status_code == 401  # forms over 4 KiB are not read at all
    assert "smallfirst_dashboard" not in client.cookies

    signed_in = client.post("/dashboard/login", data={"key": secret}, follow_redirects=False)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert secret not in cookie
    assert "dashboard.js" in client.get("/dashboard").text
    assert client.get("/dashboard/api/summary").status_code == 200

    client.post("/dashboard/logout")
    assert client.get("/dashboard/api/summary").status_code == 401
    assert secret not in caplog.text


def test_key_in_page_url_is_not_accepted(secured: tuple[httpx.Client, str, KeyStore]) -> None:
    client, secret, _ = secured
    page = client.get("/dashboard", params={"key": secret})
    assert "do not go in URLs" in page.text
    assert "dashboard.js" not in page.text


def test_ledger_not_open_is_a_503() -> None:
    app = Starlette()
    mount_dashboard(app, lambda: None)
    with BackgroundServer(app) as server:
        response = httpx.get(server.url + "/dashboard/api/summary")
    assert response.status_code == 503
    assert "not open yet" in response.json()["error"]["message"]
