"""The background writer: never blocks the caller, batches, and loses nothing on close."""

from __future__ import annotations

import threading

from smallfirst.ledger import Ledger, LedgerEntry, LedgerStore, LedgerWriter


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
