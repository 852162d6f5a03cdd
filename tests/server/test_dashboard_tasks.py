"""The dashboard's tasks panel on a live gateway with `learn:` and auth: each key sees the
tasks of its own requests, the admin token every task."""

from __future__ import annotations

import time

import httpx
import pytest
from starlette.applications import Starlette

from smallfirst.config import LearnConfig
from smallfirst.ledger import LedgerEntry, LedgerStore
from smallfirst.server.dashboard import mount_dashboard
from smallfirst.testing import BackgroundServer
from smallfirst.testing.scripted import Script
from tests.server.dashboard_seed import seed_ledger
from tests.server.gateway_helpers import running_gateway, scripted_config

ADMIN = "admin-token-for-tests"


def test_each_key_sees_its_own_tasks(scripted, monkeypatch) -> None:
    upstream, base_url = scripted
    upstream.default = Script(text="ok")
    monkeypatch.setenv("SMALLFIRST_ADMIN_TOKEN", ADMIN)
    config = scripted_config(base_url).model_copy(
        update={"learn": LearnConfig(shadow_rate=0, audit_rate=0, min_evidence=20)}
    )
    with running_gateway(config, auth=True) as gw:
        _, alice = gw.create_key("alice")
        _, bob = gw.create_key("bob")
        for key, task, n in ((alice, "refunds", 2), (bob, "tickets", 1)):
            for _ in range(n):
                gw.client(key).chat.completions.create(
                    model="small",
                    messages=[{"role": "user", "content": "hi"}],
                    metadata={"task": task},
                )
        gw.ledger.flush()

        def tasks(key: str) -> list[dict]:
            answered = httpx.get(
                gw.url + "/dashboard/api/tasks", headers={"Authorization": f"Bearer {key}"}
            )
            assert answered.status_code == 200, answered.text
            return answered.json()

        (own,) = tasks(alice)
        assert (own["task"], own["requests"], own["tiers"]) == ("refunds", 2, {"small": 1.0})
        assert own["policy_text"] == "large (cold start) · needs 20 more comparisons"
        assert [t["task"] for t in tasks(bob)] == ["tickets"]
        assert [t["task"] for t in tasks(ADMIN)] == ["refunds", "tickets"]
        everything = httpx.get(
            gw.url + "/dashboard/api/all", headers={"Authorization": f"Bearer {alice}"}
        ).json()
        assert [t["task"] for t in everything["tasks"]] == ["refunds"]


def test_the_share_per_tier_over_time_is_of_the_keys_own_requests(scripted, monkeypatch) -> None:
    """One task, two keys on different tiers: each key's series counts its own requests."""
    upstream, base_url = scripted
    upstream.default = Script(text="ok")
    monkeypatch.setenv("SMALLFIRST_ADMIN_TOKEN", ADMIN)
    config = scripted_config(base_url).model_copy(
        update={"learn": LearnConfig(shadow_rate=0, audit_rate=0)}
    )
    with running_gateway(config, auth=True) as gw:
        _, alice = gw.create_key("alice")
        _, bob = gw.create_key("bob")
        for key, model, n in ((alice, "small", 2), (bob, "large", 1)):
            for _ in range(n):
                gw.client(key).chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "hi"}],
                    metadata={"task": "refunds"},
                )
        gw.ledger.flush()

        def series(key: str, since: str = "24h") -> dict:
            answered = httpx.get(
                gw.url + "/dashboard/api/all",
                params={"since": since},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answered.status_code == 200, answered.text
            (task,) = answered.json()["tasks"]
            return task["series"]

        def answered(found: dict) -> list[tuple[int, dict[str, float]]]:
            return [(b["requests"], b["tiers"]) for b in found["buckets"] if b["requests"]]

        own = series(alice)
        assert own["bucket_s"] == 3600 and 24 <= len(own["buckets"]) <= 25
        assert answered(own) == [(2, {"small": 1.0})]
        assert answered(series(bob)) == [(1, {"large": 1.0})]
        everything = series(ADMIN, since="1h")
        assert everything["bucket_s"] == 300
        assert answered(everything) == [(3, {"small": 2 / 3, "large": 1 / 3})]


@pytest.mark.slow
def test_the_panel_in_chromium(tmp_path, chromium_page) -> None:
    """Hidden without tasks (no `learn:`), one row per task with them; no console errors."""
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    now = time.time()
    seed_ledger(store, now)
    app = Starlette()
    mount_dashboard(app, store.engine)
    page = chromium_page.page
    with BackgroundServer(app) as server:
        page.goto(server.url + "/dashboard")
        page.wait_for_selector('body[data-loaded="since=24h"]', timeout=15000)
        assert page.locator("#panel-tasks").is_hidden()
        rows = [
            LedgerEntry(f"t{i}", task=task, model="gemma", tier="small", ts=now - 60)
            for i, task in enumerate(["refunds", "refunds", "t-0123456789ab"])
        ]
        store.insert(row.as_row() for row in rows)
        page.reload()
        page.wait_for_selector('body[data-loaded="since=24h"]', timeout=15000)
        assert page.locator("#panel-tasks").is_visible()
        assert page.locator("#table-tasks tr").count() == 1 + 2
        assert "needs 100 more comparisons" in page.locator("#table-tasks").inner_text()
        assert page.locator("#table-tasks svg.spark").count() == 2  # tiers over time
        tips = page.locator("#table-tasks svg.spark").first.locator("g title").all_text_contents()
        assert [tip.split(" · ", 1)[1] for tip in tips if "· " in tip] == [
            "2 requests · small 100%"
        ]
    store.close()
    assert chromium_page.console_errors == []
