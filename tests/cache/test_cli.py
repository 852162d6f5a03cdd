"""`smallfirst cache clear [--task] [--key]` and the cache lines of `smallfirst report`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from smallfirst.cli import app
from tests.cache.helpers import MESSAGES, cached_config, settled
from tests.server.gateway_helpers import running_gateway


def ask(gw, secret: str, model: str = "small"):
    return (
        gw.client(secret)
        .chat.completions.with_raw_response.create(model=model, messages=MESSAGES, temperature=0)
        .headers["x-smallfirst-cache"]
    )


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_clear_by_key_then_by_task_then_all(scripted, tmp_path) -> None:
    _, base_url = scripted
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    config = cached_config(base_url, {"*": {}}, auth=True, ledger_url=ledger)
    with running_gateway(config) as gw:
        _, alice = gw.create_key("alice")
        _, bob = gw.create_key("bob")
        for secret in (alice, bob):
            for model in ("small", "large"):
                ask(gw, secret, model)
                settled(gw)
        assert "removed 2 cached answer(s)" in run("cache", "clear", "--key", "alice",
                                                   "--ledger", ledger)  # fmt: skip
        assert ask(gw, alice) == "miss" and ask(gw, bob) == "hit"
        settled(gw)
        assert "removed 2" in run("cache", "clear", "--task", "small", "--ledger", ledger)
        assert ask(gw, bob) == "miss" and ask(gw, bob, "large") == "hit"
        settled(gw)
        run("cache", "clear", "--ledger", ledger)
        assert ask(gw, bob, "large") == "miss"


def test_report_shows_hit_rate_and_savings_per_route(scripted, tmp_path) -> None:
    _, base_url = scripted
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    with running_gateway(cached_config(base_url, ledger_url=ledger)) as gw:
        for _ in range(4):
            gw.client().chat.completions.create(model="small", messages=MESSAGES, temperature=0)
            settled(gw)
        rows = gw.rows(kind="request")
    hits = [r for r in rows if r["outcome"] == "cache"]
    summary = json.loads(run("report", "--json", "--ledger", ledger))
    (route,) = summary["cache"]
    assert route["route"] == "small" and route["hits"] == 3 == len(hits)
    assert route["hit_rate"] == 0.75
    assert route["saved_usd"] == sum(r["baseline_cost_usd"] for r in hits) > 0
    assert "response cache on small: 3 hits of 4 (75.0%)" in run("report", "--ledger", ledger)
