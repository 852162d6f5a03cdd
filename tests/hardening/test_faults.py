"""Faults under concurrent load: upstream 5xx, hangs and resets (retried until an answer comes,
each try a hop row), and the gateway process itself stopped or killed while streams are open.
Every client gets an answer or a clear error, and the ledger holds exactly one row per finished
request."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from smallfirst.config import FailoverConfig
from smallfirst.testing import Script
from smallfirst.testing.processes import gateway_config, gateway_process, start_upstream
from tests.server.gateway_helpers import running_gateway, scripted_config

pytestmark = pytest.mark.slow
FAULTS = (
    Script("error", status=503),
    Script("reset"),
    Script("hang", delay_s=30),
    Script("reply", text="fine"),
)
PATIENT = FailoverConfig(retries=10, backoff_s=0.0, max_backoff_s=0.0, failure_threshold=1000)
"""Eleven tries a model, and no cooldown: more than all the queued faults, so every request
must end in an answer, whichever faults it happens to draw."""


def test_upstream_5xx_hangs_and_resets_under_load_are_retried(scripted) -> None:
    upstream, base_url = scripted
    for _ in range(6):
        upstream.enqueue(*FAULTS)
    config = scripted_config(base_url).model_copy(update={"failover": PATIENT})
    with running_gateway(config) as gw:

        def one(i: int) -> tuple[int, dict]:
            body = {"model": "small", "messages": [{"role": "user", "content": f"q{i}"}]}
            response = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=60)
            return response.status_code, response.json()

        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(one, range(24)))
        rows = gw.rows()
    assert [status for status, _body in answers] == [200] * 24
    requests = [row for row in rows if row["kind"] == "request"]
    assert [row["status"] for row in requests] == [200] * 24  # one row per request
    failures = [row for row in rows if row["kind"] == "hop" and row["step"] == "failure"]
    assert len(failures) == 18  # every fault drawn once, each a hop row under its request
    assert Counter(row["status"] for row in failures) == Counter({502: 12, 504: 6})
    assert {row["request_id"] for row in failures} <= {row["request_id"] for row in requests}


def test_retries_exhausted_is_a_502_naming_the_model(scripted) -> None:
    upstream, base_url = scripted
    upstream.default = Script("error", status=503)
    failover = FailoverConfig(retries=1, backoff_s=0.0, fallbacks={"small": []})
    config = scripted_config(base_url).model_copy(update={"failover": failover})
    with running_gateway(config) as gw:
        body = {"model": "small", "messages": [{"role": "user", "content": "q"}]}
        response = httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=30)
        rows = gw.rows()
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "small" in message and "503" in message and "2 attempts" in message
    assert len(upstream.received) == 2  # one retry, no fallback
    assert [(row["kind"], row["status"]) for row in rows] == [
        ("hop", 502),
        ("hop", 502),
        ("request", 502),
    ]


def read_stream(url: str, started: threading.Barrier) -> str:
    """'done' when the stream ended with [DONE], else the error the client saw."""
    body = {
        "model": "small",
        "stream": True,
        "messages": [{"role": "user", "content": "count"}],
    }
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as reply:
            lines = reply.iter_lines()
            first = next(lines)
            assert first.startswith("data: ")
            started.wait(30)
            rest = list(lines)
        return "done" if "data: [DONE]" in rest else "cut"
    except httpx.HTTPError as exc:
        return type(exc).__name__


def ledger_statuses(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT status FROM requests ORDER BY id")]


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_gateway_restart_while_streams_are_open(tmp_path: Path, how: str) -> None:
    words = " ".join(f"w{i}" for i in range(15))
    upstream = start_upstream(tmp_path, Script("slow_stream", text=words, delay_s=0.2))
    ledger = tmp_path / "ledger.db"
    config = gateway_config(tmp_path, upstream.url, {"ledger_url": f"sqlite:///{ledger}"})
    gateway = gateway_process(tmp_path, config).start("/health")
    try:
        started = threading.Barrier(5)
        with ThreadPoolExecutor(4) as pool:
            streams = [pool.submit(read_stream, gateway.url, started) for _ in range(4)]
            started.wait(30)  # every stream has its first chunk: now stop the gateway
            if how == "stop":
                assert gateway.stop()  # SIGTERM: uvicorn lets open streams finish
            else:
                gateway.kill()  # a crash
            outcomes = [s.result(timeout=60) for s in streams]
        restarted = gateway_process(tmp_path, config, port=gateway.port).start("/health")
        body = {"model": "small", "messages": [{"role": "user", "content": "again"}]}
        after = httpx.post(restarted.url + "/v1/chat/completions", json=body, timeout=30)
        assert after.status_code == 200
        assert restarted.stop()
    finally:
        gateway.kill()
        upstream.stop()
    statuses = ledger_statuses(ledger)
    if how == "stop":
        assert outcomes == ["done"] * 4  # the streams finished before the process exited
        assert statuses == [200] * 5  # 4 streams + the request after the restart, once each
    else:
        assert all(outcome != "done" for outcome in outcomes)  # the client sees the break
        assert statuses == [200]  # unfinished streams were never charged; no duplicates
