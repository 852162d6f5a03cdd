"""Ledger writes off the response path: `record()` only enqueues; a thread batches inserts.

A thread (not an asyncio task) so that sync callers, async handlers and cascade code on any
loop share one writer, and a slow database never stalls the event loop. `flush()` waits until
everything recorded so far is stored; `close()` flushes and stops, so a clean shutdown loses
nothing.
"""

from __future__ import annotations

import logging
import queue
import threading

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.store import LedgerStore

log = logging.getLogger("smallfirst.ledger")
BATCH = 500


class LedgerWriter:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[LedgerEntry | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        self.written = 0
        self.failed = 0

    def record(self, entry: LedgerEntry) -> None:
        """Queue one row; never blocks on the database."""
        self._queue.put(entry)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every entry recorded before this call is stored (or has failed)."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        if self._thread.is_alive():
            self.flush(timeout)
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[LedgerEntry] = []
            waiters: list[threading.Event] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= BATCH or self._queue.empty():
                    break
                item = self._queue.get()
            self._write(batch)
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write(self, batch: list[LedgerEntry]) -> None:
        if not batch:
            return
        try:
            self.written += self.store.insert(entry.as_row() for entry in batch)
        except Exception:  # a broken database must not kill the writer; rows are counted
            self.failed += len(batch)
            log.exception("ledger: could not store %d rows", len(batch))
