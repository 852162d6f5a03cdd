"""The ledger database locked or gone while requests flow: nothing accepted is lost, nothing is
stored twice, and clients keep getting answers (rows wait in the writer's bounded buffer)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from smallfirst.ledger import LedgerEntry, LedgerStore, LedgerWriter
from smallfirst.testing import free_port
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config
from tests.server.pg_cluster import _bindir

pytestmark = pytest.mark.slow
MESSAGES = [{"role": "user", "content": "hi"}]


def send(gw: RunningGateway, secret: str, count: int) -> list[int]:
    client = gw.client(api_key=secret)

    def one(_i: int) -> int:
        reply = client.chat.completions.with_raw_response.create(model="small", messages=MESSAGES)
        return reply.http_response.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def assert_one_row_each(gw: RunningGateway, count: int) -> None:
    assert gw.ledger.flush(timeout=60)
    rows = gw.ledger.store.rows()
    assert len(rows) == count
    assert len({row["request_id"] for row in rows}) == count  # none stored twice
    assert {row["status"] for row in rows} == {200}


def test_sqlite_locked_for_longer_than_busy_timeout(scripted, tmp_path, caplog) -> None:
    _upstream, base_url = scripted
    path = tmp_path / "ledger.db"
    caplog.set_level(logging.WARNING, logger="smallfirst.ledger")
    with running_gateway(scripted_config(base_url), ledger_url=f"sqlite:///{path}") as gw:
        _key, secret = gw.create_key("team")
        assert send(gw, secret, 5) == [200] * 5
        assert gw.ledger.flush()
        # another process holding the write lock; it waits for the gateway's own brief
        # writes (a key's last use, a retention pass) to end before it takes the lock
        locker = sqlite3.connect(path, timeout=10, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        assert send(gw, secret, 20) == [200] * 20  # answers do not wait for the ledger
        assert not gw.ledger.flush(timeout=7)  # longer than busy_timeout (5 s): writes fail
        locker.execute("COMMIT")
        locker.close()
        assert_one_row_each(gw, 25)
    assert "cannot write to the database" in caplog.text
    assert "reachable again" in caplog.text


class PostgresServer:
    """A cluster of our own that the test can stop and start again on the same port."""

    def __init__(self, base: Path, bindir: Path) -> None:
        import os

        self.base, self.bindir, self.port = base, bindir, free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(base / "data"), "-A", "trust", "-U", "test", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://test@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.prefix, str(self.bindir / tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.base / "data"), str(self.base / "log")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries missing: `make system-deps` installs Debian postgresql")
    pytest.importorskip("psycopg", reason="psycopg missing: pip install -e '.[dev]'")
    base = Path(tempfile.mkdtemp(prefix="smallfirst-pg-outage-"))
    try:
        server = PostgresServer(base, bindir)
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {exc.stderr.decode()[-300:]}")
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_stopped_then_started_again(scripted, postgres: PostgresServer, caplog) -> None:
    _upstream, base_url = scripted
    caplog.set_level(logging.WARNING)
    with running_gateway(scripted_config(base_url), ledger_url=postgres.url, auth=True) as gw:
        _key, secret = gw.create_key("team", budget_usd=10.0)
        assert send(gw, secret, 5) == [200] * 5
        assert gw.ledger.flush()
        postgres.stop()
        time.sleep(5.5)  # past the key cache's refresh period: keys are re-read and fail
        assert send(gw, secret, 15) == [200] * 15  # cached keys keep serving
        assert not gw.ledger.flush(timeout=2)
        postgres.start()
        assert_one_row_each(gw, 20)
    assert "cannot re-read API keys" in caplog.text
    assert "cannot write to the database" in caplog.text


class FlakyStore(LedgerStore):
    """Every other insert commits and then reports a lost connection: the ambiguous failure
    where a naive retry would store (and charge) the rows twice."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls = 0

    def insert(self, rows) -> int:
        self.calls += 1
        count = super().insert(rows)
        if self.calls % 2 == 1:
            raise OperationalError("COMMIT", {}, ConnectionError("connection lost after commit"))
        return count


def test_a_retried_batch_is_not_stored_twice(tmp_path) -> None:
    store = FlakyStore(f"sqlite:///{tmp_path / 'l.db'}")
    writer = LedgerWriter(store)
    for i in range(30):
        writer.record(LedgerEntry(request_id=f"r{i}"))
        writer.record(LedgerEntry.for_hop(LedgerEntry(request_id=f"r{i}"), 1, "answer"))
    assert writer.flush(timeout=20)
    writer.close()
    rows = store.rows()
    assert len(rows) == 60
    assert store.calls == 1  # the retry found every row already stored and inserted none
    assert len({(r["request_id"], r["kind"], r["hop"]) for r in rows}) == 60


def test_the_buffer_is_bounded_and_drops_the_oldest(tmp_path, caplog) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = LedgerStore(url)
    locker = sqlite3.connect(tmp_path / "l.db", timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    writer = LedgerWriter(store, max_buffer=10)
    for i in range(25):
        writer.record(LedgerEntry(request_id=f"r{i}"))
    locker.execute("COMMIT")
    locker.close()
    assert writer.flush(timeout=30)
    writer.close()
    assert writer.dropped == 15 and "buffer full" in caplog.text
    assert [row["request_id"] for row in store.rows()] == [f"r{i}" for i in range(15, 25)]


class PoisonStore(LedgerStore):
    """Refuses any insert holding the row `bad` (a data error, not an outage); the first
    one-by-one insert after it finds the database gone for a moment."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.outage_once = True

    def insert(self, rows) -> int:
        rows = list(rows)
        if any(row["request_id"] == "bad" for row in rows):
            raise ValueError("value too long for column")
        if len(rows) == 1 and rows[0]["request_id"] == "r3" and self.outage_once:
            self.outage_once = False
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))
        return super().insert(rows)


def test_a_poison_row_is_dropped_alone_and_an_outage_meanwhile_keeps_the_rest(tmp_path) -> None:
    store = PoisonStore(f"sqlite:///{tmp_path / 'l.db'}")
    writer = LedgerWriter(store)
    for request_id in ["r1", "bad", "r2", "r3", "r4"]:
        writer.record(LedgerEntry(request_id=request_id))
    assert writer.flush(timeout=20)
    writer.close()
    assert writer.failed == 1 and writer.dropped == 0
    assert [row["request_id"] for row in store.rows()] == ["r1", "r2", "r3", "r4"]
