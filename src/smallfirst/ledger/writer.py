"""Ledger writes off the response path: `record()` only enqueues; a thread batches inserts.

Rows wait up to `LINGER_S` to share a transaction. A thread (not an asyncio task) so that
sync callers, async handlers and cascade code on any loop share one writer, and a slow database
never stalls the event loop. `flush()` waits until
everything recorded so far is stored; `close()` flushes and stops, so a clean shutdown loses
nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.store import LedgerStore

log = logging.getLogger("smallfirst.ledger")
BATCH = 500
LINGER_S = 0.1
"""How long a batch waits for more rows before it is written: one transaction per burst."""


class LedgerWriter:
    def __init__(self, store: LedgerStore, linger_s: float = LINGER_S) -> None:
        self.store = store
        self.linger_s = linger_s
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
        stop = False
        while not stop:
            batch: list[LedgerEntry] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            deadline = time.monotonic() + self.linger_s
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stop or waiters or len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            self._write(batch)
            for waiter in waiters:
                waiter.set()

    def _write(self, batch: list[LedgerEntry]) -> None:
        if not batch:
            return
        try:
            self.written += self.store.insert(entry.as_row() for entry in batch)
        except Exception:  # a broken database must not kill the writer; rows are counted
            self.failed += len(batch)
            log.exception("ledger: could not store %d rows", len(batch))
