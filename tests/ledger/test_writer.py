"""The background writer: never blocks the caller, batches, and loses nothing on close."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from smallfirst.ledger import Ledger, LedgerEntry, LedgerStore, LedgerWriter
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture


def test_many_threads_record_and_flush_stores_every_row(tmp_path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")

    def produce(thread: int) -> None:
        for i in range(250):
            ledger.record(LedgerEntry(request_id=f"t{thread}-{i}"))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.flush()
    rows = ledger.store.rows()
    assert len(rows) == 1000 and len({r["request_id"] for r in rows}) == 1000
    ledger.close()


class SlowStore(LedgerStore):
    """A store whose inserts wait for a signal: rows pile up in the queue meanwhile."""

    def __init__(self, url: str, gate: threading.Event) -> None:
        super().__init__(url)
        self.gate = gate
        self.batches: list[int] = []

    def insert(self, rows) -> int:
        self.gate.wait(10)
        count = super().insert(rows)
        self.batches.append(count)
        return count


def test_record_does_not_wait_for_the_database_and_close_flushes(tmp_path) -> None:
    gate = threading.Event()
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = SlowStore(url, gate)
    writer = LedgerWriter(store)
    for i in range(300):
        writer.record(LedgerEntry(request_id=f"r{i}"))  # returns at once: the db is blocked
    assert store.batches == []
    gate.set()
    writer.close()
    assert sum(store.batches) == 300 and len(store.batches) < 300  # batched
    assert len(LedgerStore(url).rows()) == 300


class BrokenStore(LedgerStore):
    def insert(self, rows) -> int:
        raise RuntimeError("disk full")


def test_a_failing_database_does_not_kill_the_writer(tmp_path) -> None:
    writer = LedgerWriter(BrokenStore(f"sqlite:///{tmp_path / 'l.db'}"))
    writer.record(LedgerEntry(request_id="r1"))
    assert writer.flush()
    writer.record(LedgerEntry(request_id="r2"))
    writer.close()
    assert writer.failed == 2 and writer.written == 0


class ReadOnlyWhileFlagged(LedgerStore):
    """Connections opened while `read_only` is set stay read-only for good (SQLite's
    `query_only`), as a connection to a file that was chmod 444 when it opened does: writes on
    them fail with SQLite's real "attempt to write a readonly database"."""

    def __init__(self, url: str) -> None:
        self.read_only = False
        self.connections = 0
        super().__init__(url)
        event.listen(self.engine, "connect", self._opened)

    def _opened(self, dbapi_connection, _record) -> None:
        self.connections += 1
        if self.read_only:
            dbapi_connection.execute("PRAGMA query_only=ON")


def test_after_a_read_only_spell_the_writer_stores_through_a_fresh_connection(tmp_path) -> None:
    store = ReadOnlyWhileFlagged(f"sqlite:///{tmp_path / 'l.db'}")
    store.read_only = True
    store.reset()  # the pool's next connection opens read-only
    writer = LedgerWriter(store)
    for i in range(5):
        writer.record(LedgerEntry(request_id=f"r{i}"))
    assert not writer.flush(timeout=1)  # refused as read-only: kept as pending, not dropped
    assert writer.pending == 5 and writer.failed == 0 and writer.dropped == 0
    opened_read_only = store.connections
    store.read_only = False  # write access is back; the pooled connection is still read-only
    assert writer.flush(timeout=20)
    writer.close()
    assert store.connections > opened_read_only
    assert [row["request_id"] for row in store.rows()] == [f"r{i}" for i in range(5)]
    assert writer.written == 5 and writer.dropped == 0


def test_sqlite_reports_a_read_only_database_as_an_operational_error(tmp_path) -> None:
    """The writer treats OperationalError as an outage: a read-only file must raise it."""
    store = ReadOnlyWhileFlagged(f"sqlite:///{tmp_path / 'l.db'}")
    store.read_only = True
    store.reset()
    with pytest.raises(OperationalError, match="readonly database"):
        store.insert([LedgerEntry(request_id="r1").as_row()])


@pytest.mark.slow
def test_a_read_only_postgres_keeps_rows_until_it_is_writable(
    postgres_url: str,  # noqa: F811 - the fixture
) -> None:
    """Like a standby after a failover: PostgreSQL refuses writes with SQLSTATE 25006, which is
    an outage (rows wait), not a bad row (rows dropped); connections opened meanwhile stay
    read-only, so only a fresh one stores them."""
    url = fresh_database(postgres_url, "ledger")
    name = url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    store = LedgerStore(url)
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE {name} SET default_transaction_read_only = on"))
    store.reset()  # the pool's next connection is read-only
    writer = LedgerWriter(store)
    try:
        for i in range(5):
            writer.record(LedgerEntry(request_id=f"r{i}"))
        assert not writer.flush(timeout=1)
        assert writer.pending == 5 and writer.failed == 0 and writer.dropped == 0
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} SET default_transaction_read_only = off"))
        assert writer.flush(timeout=20)
    finally:
        writer.close()
        admin.dispose()
    assert [row["request_id"] for row in store.rows()] == [f"r{i}" for i in range(5)]
    store.close()
