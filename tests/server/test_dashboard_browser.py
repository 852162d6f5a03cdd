"""The dashboard in headless Chromium: sign in, data from a seeded ledger, charts drawn,
filters change what is shown, no console errors; saves artifacts/dashboard.png."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from smallfirst.ledger import KeyStore, LedgerStore
from smallfirst.server.auth import Authenticator
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer
from tests.server.dashboard_seed import seed_ledger, seed_traffic

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
pytestmark = pytest.mark.slow


@pytest.fixture
def site(tmp_path) -> Iterator[tuple[str, str]]:
    """A dashboard with auth on over a seeded ledger; yields (base url, API key)."""
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = time.time()
    seed_ledger(store, now)
    seed_traffic(store, now)
    keys = KeyStore(store)
    _, secret = keys.create("viewer")
    app = Starlette()
    mount_dashboard(app, store.engine, Authenticator(keys, required=True))
    with BackgroundServer(app) as server:
        yield server.url, secret
    store.close()


def _api(url: str, key: str, **params: str) -> dict:
    response = httpx.get(
        f"{url}/dashboard/api/all", params=params, headers={"Authorization": f"Bearer {key}"}
    )
    response.raise_for_status()
    return response.json()


def _kpi(page, name: str) -> str:
    return page.locator(f'[data-kpi="{name}"] .value').inner_text()


def _wait_loaded(page, query: str) -> None:
    page.wait_for_selector(f'body[data-loaded="{query}"]', timeout=15000)


def test_dashboard_in_chromium(site: tuple[str, str], chromium_page) -> None:
    url, key = site
    page = chromium_page.page
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.goto(url + "/dashboard")
    page.fill('input[name="key"]', key)
    page.click('button[type="submit"]')
    _wait_loaded(page, "since=24h")

    day = _api(url, key, since="24h")
    assert _kpi(page, "requests") == f"{day['summary']['requests']:,}"
    assert _kpi(page, "escalation rate") == f"{100 * day['summary']['escalation_rate']:.1f}%"
    assert page.locator("#chart-traffic rect.bar").count() > 10
    assert page.locator("#chart-savings path.line").count() == 2
    assert page.locator("#chart-escalation rect.bar").count() == len(day["routes"])
    assert page.locator("#chart-latency rect.bar").count() == 3 * len(day["latency"])
    assert page.locator("#chart-keys rect.bar").count() == len(day["keys"])
    assert page.locator("#table-recent tr").count() == 1 + len(day["recent"])
    assert "small" in page.locator("#chart-traffic .legend").inner_text()

    page.select_option("#split", "model")
    assert "gpt-4o" in page.locator("#chart-traffic .legend").inner_text()

    page.click('.presets button[data-since="1h"]')
    _wait_loaded(page, "since=1h")
    hour = _api(url, key, since="1h")["summary"]["requests"]
    assert hour < day["summary"]["requests"]
    assert _kpi(page, "requests") == f"{hour:,}"
    assert page.locator("#table-recent tr").count() == 1 + hour

    page.fill("#since", "2020-01-01T00:00")
    page.fill("#until", "2020-01-02T00:00")
    page.click("#apply")
    page.wait_for_selector('body[data-loaded*="2020"]', timeout=15000)
    assert _kpi(page, "requests") == "0"
    assert "no data in this range" in page.locator("#chart-traffic").inner_text()

    page.fill("#since", "2020-01-03T00:00")
    page.click("#apply")
    assert "start must be before the end" in page.locator("#status").inner_text()

    page.click('.presets button[data-since="7d"]')
    _wait_loaded(page, "since=7d")
    assert _kpi(page, "requests") == f"{_api(url, key, since='7d')['summary']['requests']:,}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert chromium_page.console_errors == []
