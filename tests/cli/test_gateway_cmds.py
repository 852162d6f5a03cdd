"""`smallfirst serve`, `keys` and `report` as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.ledger import LedgerEntry, LedgerStore
from smallfirst.testing import Script, free_port

runner = CliRunner()


def test_keys_create_list_revoke() -> None:
    created = runner.invoke(
        app, ["keys", "create", "--name", "team-a", "--budget", "5", "--rpm", "60"]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert secret.startswith("sf-")
    listed = runner.invoke(app, ["keys", "list", "--json"])
    [key] = json.loads(listed.stdout)
    assert (key["name"], key["budget_usd"], key["rpm"], key["revoked"]) == ("team-a", 5, 60, None)
    assert secret not in listed.stdout
    assert "team-a" in runner.invoke(app, ["keys", "list"]).stdout
    revoked = runner.invoke(app, ["keys", "revoke", "team-a"])
    assert revoked.exit_code == 0 and key["id"] in revoked.stdout
    again = runner.invoke(app, ["keys", "revoke", "team-a"])
    assert again.exit_code == 1 and "no active key" in again.output
    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--rpm", "0"])
    assert bad.exit_code == 1 and "--rpm" in bad.output


def test_report_table_and_json(state_home) -> None:
    store = LedgerStore()
    store.insert(
        [
            LedgerEntry(
                request_id="a", model="s", tier="small", cost_usd=0.01, baseline_cost_usd=0.1
            ).as_row(),
            LedgerEntry(
                request_id="b", model="L", tier="large", cost_usd=0.1, baseline_cost_usd=0.1
            ).as_row(),
        ]
    )
    store.close()
    table = runner.invoke(app, ["report"])
    assert table.exit_code == 0, table.output
    assert "small 50.0%" in table.stdout and "saved $0.0900 (45.0%)" in table.stdout
    data = json.loads(runner.invoke(app, ["report", "--since", "1h", "--json"]).stdout)
    assert data["totals"]["requests"] == 2
    assert data["totals"]["savings_usd"] == pytest.approx(0.09)
    bad = runner.invoke(app, ["report", "--since", "someday"])
    assert bad.exit_code == 1 and "--since" in bad.output


@pytest.mark.slow
def test_serve_answers_and_flushes_the_ledger_on_shutdown(scripted, tmp_path, state_home) -> None:
    upstream, base_url = scripted
    upstream.default = Script(text="slow answer", delay_s=1.0)
    config = tmp_path / "smallfirst.yaml"
    config.write_text(
        yaml.safe_dump(
            {"models": [{"name": "up", "backend": "openai", "base_url": base_url, "tier": "small"}]}
        )
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from smallfirst.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        results: list[int] = []

        def call() -> None:
            response = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "up", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            results.append(response.status_code)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        while len(upstream.received) < 6:  # all six are in flight at the upstream
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        for thread in threads:
            thread.join()
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"http://127.0.0.1:{port}/v1" in output and "up" in output
    assert results == [200] * 6
    rows = LedgerStore().rows()
    assert len(rows) == 6 and all(r["status"] == 200 and r["model"] == "up" for r in rows)
