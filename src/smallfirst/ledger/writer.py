"""Ledger writes off the response path: `record()` only appends; a thread batches inserts.

The writer wakes every `LINGER_S` (or at once for a flush) and stores everything pending in
one transaction per `BATCH` rows; recording never signals another thread, so the request path
pays no thread hand-off per request. A thread (not an asyncio task) so that sync callers, async
handlers and cascade code on any loop share one writer, and a slow database never stalls the
event loop. `flush()` waits until everything recorded so far is stored; `close()` flushes and
stops, so a clean shutdown loses nothing.

When the database is unreachable, locked or read-only (SQLAlchemy's OperationalError family,
SQLite's "attempt to write a readonly database", a PostgreSQL standby's read-only transaction),
rows stay buffered in memory, oldest first, and the batch is retried with backoff: a database
restart loses nothing that was accepted. Each outage drops the store's pooled connections, so
the retry opens a fresh one: a connection opened while the file was read-only (or to a server
that has since restarted) stays that way, and retrying on it would never succeed. The buffer
is bounded (`max_buffer` rows); beyond it the oldest rows are dropped and counted (`dropped`,
exported in /metrics), with an error log line, so an outage cannot exhaust memory. A retried
batch skips the rows a failed-looking commit did store, so nothing is charged twice.
Any other error (a row the database refuses) is retried row by row and only the bad rows are
dropped, so one poison row cannot block the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.store import LedgerStore

log = logging.getLogger("smallfirst.ledger")
BATCH = 5000
"""Rows per transaction at most. Large, because a busy writer's cost per row falls with it:
a batch makes one rollup upsert per group it touches (about 4 x the distinct model/key/route
combinations of its minutes), and at 5,000 rows that is ~0.05 upserts per row, not ~0.3 as at
500. A request row is still stored within `LINGER_S` when the gateway is not saturated."""
LINGER_S = 0.1
"""How often the writer wakes to store what was recorded: one transaction per burst."""
MAX_BUFFER = 200_000
"""Rows held in memory while the database is down (a few hundred MB at most)."""
MAX_BACKOFF_S = 5.0


READ_ONLY_SQLSTATE = "25006"
"""PostgreSQL's read_only_sql_transaction: a standby, or `default_transaction_read_only`."""


def _unavailable(exc: Exception) -> bool:
    """The database is down, locked, read-only or the connection broke: worth retrying later."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and (bool(exc.connection_invalidated) or _read_only(exc))


def _read_only(exc: DBAPIError) -> bool:
    """SQLite's read-only file is an OperationalError already; PostgreSQL's is not."""
    return getattr(exc.orig, "sqlstate", None) == READ_ONLY_SQLSTATE


class LedgerWriter:
    def __init__(
        self, store: LedgerStore, linger_s: float = LINGER_S, max_buffer: int = MAX_BUFFER
    ) -> None:
        self.store = store
        self.linger_s = linger_s
        self.max_buffer = max_buffer
        self._pending: deque[LedgerEntry] = deque()
        self._writing = 0
        """Rows taken off `_pending` by the write in progress (back on it if that fails)."""
        self._waiters: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._give_up_at = float("inf")
        self._outage_since: float | None = None
        self._backoff = linger_s
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        self.written = 0
        self.failed = 0
        """Rows the database refused (bad rows), dropped after a row-by-row retry."""
        self.dropped = 0
        """Rows dropped because the buffer was full during an outage, or lost at close."""

    def record(self, entry: LedgerEntry) -> None:
        """Queue one row; never blocks and never wakes the writer (a deque append)."""
        if len(self._pending) >= self.max_buffer:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error(
                    "ledger: buffer full (%d rows) while the database is unavailable; "
                    "dropped the oldest rows (%d so far)",
                    self.max_buffer,
                    self.dropped,
                )
        self._pending.append(entry)

    @property
    def pending(self) -> int:
        """Rows accepted and not yet stored (the write in progress included)."""
        return len(self._pending) + self._writing

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every entry recorded before this call is stored (or was refused);
        False when that did not happen within `timeout` (the database is unavailable)."""
        done = threading.Event()
        self._waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Store what is pending, retrying for up to `timeout` seconds, then stop."""
        if self._thread.is_alive():
            self._give_up_at = time.monotonic() + (timeout if timeout is not None else 3600.0)
            self._stopping = True
            self._wake.set()
            self._thread.join(None if timeout is None else timeout + 5.0)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.linger_s if self._outage_since is None else self._backoff)
            self._wake.clear()
            stopping = self._stopping
            waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
            stored = self._drain()
            if stored:
                for waiter in waiters:
                    waiter.set()
            else:
                self._waiters.extendleft(reversed(waiters))
            if stopping and (stored or time.monotonic() >= self._give_up_at):
                if not stored:
                    self.dropped += len(self._pending)
                    log.error(
                        "ledger: shutting down with the database unavailable; %d rows lost",
                        len(self._pending),
                    )
                for waiter in self._waiters:
                    waiter.set()
                return

    def _drain(self) -> bool:
        """Store everything pending; False (rows kept, oldest first) when the database is down."""
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(len(self._pending), BATCH))]
            self._writing = len(batch)
            try:
                self._write(batch, retry=self._outage_since is not None)
            except Exception as exc:
                failure: Exception | None = exc
                if not _unavailable(exc):
                    batch, failure = self._write_one_by_one(batch)
                if batch:
                    self._pending.extendleft(reversed(batch))
                    self._writing = 0
                    self._outage(failure or exc)
                    return False
            self._writing = 0
        if self._outage_since is not None:
            log.warning(
                "ledger: database reachable again after %.1f s; buffered rows stored",
                time.monotonic() - self._outage_since,
            )
            self._outage_since, self._backoff = None, self.linger_s
        return True

    def _outage(self, exc: Exception) -> None:
        self.store.reset()  # the next attempt opens a fresh connection
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            log.error(
                "ledger: cannot write to the database (%s: %s); buffering rows in memory "
                "(%d pending, at most %d) and retrying with backoff up to %.0f s",
                type(exc).__name__,
                str(exc).splitlines()[0][:200],
                len(self._pending),
                self.max_buffer,
                MAX_BACKOFF_S,
            )
        self._backoff = min(MAX_BACKOFF_S, max(0.05, self._backoff * 2))

    def _write(self, batch: list[LedgerEntry], retry: bool) -> None:
        if retry:  # a commit that failed on the way back may have stored some rows already
            stored = self._already_stored(batch)
            batch = [e for e in batch if (e.request_id, e.kind, e.hop) not in stored]
        if batch:
            self.written += self.store.insert(entry.as_row() for entry in batch)

    def _already_stored(self, batch: list[LedgerEntry]) -> set[tuple[str, str, int]]:
        table = self.store.requests
        ids = list({entry.request_id for entry in batch})
        query = select(table.c.request_id, table.c.kind, table.c.hop).where(
            table.c.request_id.in_(ids)
        )
        with self.store.engine.connect() as conn:
            return {(r, k, h) for r, k, h in conn.execute(query)}

    def _write_one_by_one(
        self, batch: list[LedgerEntry]
    ) -> tuple[list[LedgerEntry], Exception | None]:
        """Store what the database accepts, dropping refused rows; if it becomes unavailable
        meanwhile, the rows not yet stored and the error, to keep and retry."""
        for i, entry in enumerate(batch):
            try:
                self.written += self.store.insert([entry.as_row()])
            except Exception as exc:
                if _unavailable(exc):
                    return batch[i:], exc
                self.failed += 1  # this row is refused: drop it, keep the others
                log.exception("ledger: the database refused row %s; dropped", entry.request_id)
        return [], None
