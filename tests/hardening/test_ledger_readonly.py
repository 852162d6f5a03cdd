"""The ledger's files turn read-only under the gateway (files 444, directory 555), then writable
again: every row accepted meanwhile is stored by a fresh connection without a restart, and
/metrics shows what waited in memory and that nothing was lost (issue 16, item 1).

Root ignores file permissions, so as root the gateway runs with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped (`setpriv`): a process that obeys permission bits like any
unprivileged user's. (Switching to `nobody` would not work here: the interpreter lives under
root's private home.) As any other user the gateway simply runs as that user.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smallfirst.testing.processes import ServerProcess, gateway_config, gateway_process

pytestmark = pytest.mark.slow
DROP_PERMISSION_BYPASS = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
]
LEDGER_FILES = ("ledger.db", "ledger.db-wal", "ledger.db-shm")


@pytest.fixture
def unprivileged() -> list[str]:
    """The command prefix that makes the gateway obey file permissions (skips if none works)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: root ignores chmod")
    probe = Path(f"/tmp/smallfirst-ro-probe-{os.getpid()}")
    probe.write_text("")
    probe.chmod(0o444)
    try:
        command = [*DROP_PERMISSION_BYPASS, sys.executable, "-c", f"open({str(probe)!r}, 'a')"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        probe.unlink()
    if "PermissionError" not in result.stderr:
        pytest.skip(f"cannot drop root's permission bypass here: {result.stderr[-300:]!r}")
    return DROP_PERMISSION_BYPASS


def ledger_metrics(gateway: ServerProcess) -> dict[str, float]:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("smallfirst_ledger_rows_")
    }


def wait_for(gateway: ServerProcess, done, what: str, timeout: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        metrics = ledger_metrics(gateway)
        if done(metrics):
            return metrics
        if time.monotonic() > deadline:
            log = gateway.log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"{what}: still {metrics} after {timeout:.0f} s\n{log}")
        time.sleep(0.2)


def send(gateway: ServerProcess, count: int) -> list[int]:
    body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}

    def one(_i: int) -> int:
        return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def set_writable(state: Path, writable: bool) -> None:
    for name in LEDGER_FILES:
        if (state / name).exists():
            (state / name).chmod(0o644 if writable else 0o444)
    state.chmod(0o755 if writable else 0o555)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    set_writable(tmp_path / "state", True)  # so pytest can clean up after a failure


def test_rows_accepted_while_read_only_are_stored_once_writable_again(
    scripted, workdir: Path, unprivileged: list[str]
) -> None:
    _upstream, base_url = scripted
    config = gateway_config(workdir, base_url.removesuffix("/v1"))
    state = workdir / "state"

    first = gateway_process(workdir, config)
    first.command = [*unprivileged, *first.command]
    first.start("/health")
    assert send(first, 3) == [200] * 3
    wait_for(first, lambda m: m["smallfirst_ledger_rows_written_total"] == 3, "first rows")
    first.kill()  # a crash: the WAL files stay, as after the probe's unclean stop
    assert all((state / name).exists() for name in LEDGER_FILES)

    set_writable(state, False)
    gateway = gateway_process(workdir, config)
    gateway.command = [*unprivileged, *gateway.command]
    gateway.start("/health")  # opens the ledger read-only: reads work, writes cannot
    try:
        assert send(gateway, 20) == [200] * 20  # answers never wait for the ledger
        wait_for(
            gateway,
            lambda _m: "readonly database" in gateway.log.read_text(errors="replace"),
            "the writer reports the read-only database",
        )
        metrics = ledger_metrics(gateway)
        assert metrics["smallfirst_ledger_rows_pending"] == 20
        assert metrics["smallfirst_ledger_rows_written_total"] == 0

        set_writable(state, True)
        metrics = wait_for(
            gateway,
            lambda m: m["smallfirst_ledger_rows_pending"] == 0,
            "rows stored once writable again, with the gateway still running",
        )
        assert metrics["smallfirst_ledger_rows_written_total"] == 20
        assert metrics["smallfirst_ledger_rows_dropped_total"] == 0
    finally:
        assert gateway.stop()

    with sqlite3.connect(state / "ledger.db") as db:
        rows = db.execute("SELECT request_id, status FROM requests WHERE kind = 'request'")
        rows = rows.fetchall()
    assert len(rows) == 23 and len({request_id for request_id, _ in rows}) == 23
    assert {status for _, status in rows} == {200}
    log = gateway.log.read_text(errors="replace")
    assert "reachable again" in log and "rows lost" not in log
