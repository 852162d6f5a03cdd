"""The dashboard mounted in the real gateway: requests served through it show up live."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.ledger import Ledger
from smallfirst.testing import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "Say hi"}]


def test_gateway_traffic_appears_on_the_dashboard(scripted, tmp_path) -> None:
    upstream, base_url = scripted
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    setup = Ledger(url)
    _, secret = setup.keys.create("team-a")
    setup.close()
    with running_gateway(scripted_config(base_url), ledger_url=url, auth=True) as gw:
        client = gw.client(api_key=secret)
        for model in ("small", "small", "large"):
            upstream.enqueue(Script(text="hi", prompt_tokens=100, completion_tokens=10))
            client.chat.completions.create(model=model, messages=MESSAGES)
        gw.ledger.flush()
        with httpx.Client(base_url=gw.url) as web:
            assert web.get("/dashboard/api/summary").status_code == 401
            assert 'action="/dashboard/login"' in web.get("/dashboard").text
            auth = {"Authorization": f"Bearer {secret}"}
            body = web.get("/dashboard/api/all", headers=auth).json()
    small, large = (100 * 1.0 + 10 * 2.0) / 1e6, (100 * 10.0 + 10 * 30.0) / 1e6
    summary = body["summary"]
    assert summary["requests"] == 3
    assert summary["cost_usd"] == pytest.approx(2 * small + large)
    assert summary["baseline_usd"] == pytest.approx(3 * large)
    assert summary["savings_usd"] == pytest.approx(2 * (large - small))
    assert {k: sum(v["requests"]) for k, v in body["series"]["by_tier"].items()} == {
        "small": 2,
        "large": 1,
    }
    assert body["keys"][0]["key_name"] == "team-a"
    assert body["routes"][0]["route"] == "direct"
    assert [r["model"] for r in body["recent"]] == ["large", "small", "small"]
