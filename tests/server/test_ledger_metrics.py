"""/metrics tells what the ledger holds in memory and what it lost: with the database locked
and the buffer full, every accepted row is either stored later or counted as dropped."""

from __future__ import annotations

import sqlite3
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "hi"}]


def ledger_metrics(gw: RunningGateway) -> dict[str, float]:
    text = httpx.get(gw.url + "/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("smallfirst_ledger_rows_")
    }


def wait_for(gw: RunningGateway, done, what: str, timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while not done(metrics := ledger_metrics(gw)):
        assert time.monotonic() < deadline, f"{what}: still {metrics}"
        time.sleep(0.05)
    return metrics


def test_rows_dropped_on_overflow_are_counted_and_the_rest_are_stored(scripted, tmp_path) -> None:
    _upstream, base_url = scripted
    path = tmp_path / "l.db"
    with running_gateway(scripted_config(base_url), ledger_url=f"sqlite:///{path}") as gw:
        assert ledger_metrics(gw) == {
            "smallfirst_ledger_rows_pending": 0,
            "smallfirst_ledger_rows_written_total": 0,
            "smallfirst_ledger_rows_dropped_total": 0,
            "smallfirst_ledger_rows_refused_total": 0,
        }
        gw.ledger.writer.max_buffer = 5
        locker = sqlite3.connect(path, timeout=10, isolation_level=None)  # waits out a write
        locker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
        client = gw.client()
        client.chat.completions.create(model="small", messages=MESSAGES)
        time.sleep(0.5)  # the writer takes that row and waits on the lock (5 s busy timeout)
        for _ in range(11):  # meanwhile the buffer of 5 overflows
            client.chat.completions.create(model="small", messages=MESSAGES)
        locked = wait_for(
            gw,
            lambda m: (
                m["smallfirst_ledger_rows_pending"] + m["smallfirst_ledger_rows_dropped_total"]
                == 12
            ),
            "every accepted row is pending or dropped",
        )
        assert locked["smallfirst_ledger_rows_dropped_total"] >= 1
        assert locked["smallfirst_ledger_rows_written_total"] == 0
        locker.execute("COMMIT")
        locker.close()
        stored = wait_for(
            gw, lambda m: m["smallfirst_ledger_rows_pending"] == 0, "rows stored after the lock"
        )
        assert (
            stored["smallfirst_ledger_rows_dropped_total"]
            == locked["smallfirst_ledger_rows_dropped_total"]
        )
        assert (
            stored["smallfirst_ledger_rows_written_total"]
            == 12 - stored["smallfirst_ledger_rows_dropped_total"]
        )
        assert len(gw.rows()) == stored["smallfirst_ledger_rows_written_total"]
