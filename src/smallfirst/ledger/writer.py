"""Ledger writes off the response path: `record()` only appends; a thread batches inserts.

The writer wakes every `LINGER_S` (or at once for a flush) and stores everything pending in
one transaction per `BATCH` rows; recording never signals another thread, so the request path
pays no thread hand-off per request. A thread (not an asyncio task) so that sync callers, async
handlers and cascade code on any loop share one writer, and a slow database never stalls the
event loop. `flush()` waits until everything recorded so far is stored; `close()` flushes and
stops, so a clean shutdown loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.store import LedgerStore

log = logging.getLogger("smallfirst.ledger")
BATCH = 500
LINGER_S = 0.1
"""How often the writer wakes to store what was recorded: one transaction per burst."""


class LedgerWriter:
    def __init__(self, store: LedgerStore, linger_s: float = LINGER_S) -> None:
        self.store = store
        self.linger_s = linger_s
        self._pending: deque[LedgerEntry] = deque()
        self._waiters: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        self.written = 0
        self.failed = 0

    def record(self, entry: LedgerEntry) -> None:
        """Queue one row; never blocks and never wakes the writer (a deque append)."""
        self._pending.append(entry)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every entry recorded before this call is stored (or has failed)."""
        done = threading.Event()
        self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        if self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.linger_s)
            self._wake.clear()
            stopping = self._stopping
            waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
            while self._pending:
                count = min(len(self._pending), BATCH)
                self._write([self._pending.popleft() for _ in range(count)])
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _write(self, batch: list[LedgerEntry]) -> None:
        if not batch:
            return
        try:
            self.written += self.store.insert(entry.as_row() for entry in batch)
        except Exception:  # a broken database must not kill the writer; rows are counted
            self.failed += len(batch)
            log.exception("ledger: could not store %d rows", len(batch))
