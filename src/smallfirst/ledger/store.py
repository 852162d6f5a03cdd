"""Where ledger rows and API keys live: SQLite (WAL) by default, any SQLAlchemy URL otherwise.

Opening a store applies pending migrations and reflects the tables, so the migrations are the
one definition of the schema. Writes are batched by `LedgerWriter`; the store itself is sync.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, func, make_url, select

from smallfirst.config import state_dir
from smallfirst.errors import ConfigError
from smallfirst.ledger import partitions, rollups, route_rollups, task_rollups
from smallfirst.ledger.migrations import migrate

LEDGER_FILE = "ledger.db"
TABLES = ("requests", "api_keys", "rollups", "ledger_meta", "task_rollups", "route_rollups")


def default_ledger_url() -> str:
    return f"sqlite:///{state_dir() / LEDGER_FILE}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (report, dashboard) run while the gateway writes."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _connect_args(url: str) -> dict[str, Any]:
    """PostgreSQL sessions without JIT compilation: every ledger query is short, and compiling
    one cost ~20 ms of a ~130 ms dashboard rollup read at 10M requests (EXPLAIN ANALYZE)."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # reported with the URL by create_engine
        return {}
    return {"options": "-c jit=off"} if backend == "postgresql" else {}


def _make_sqlite_folder(url: str) -> None:
    try:
        parsed = make_url(url)
    except Exception:  # reported with the URL by create_engine below
        return
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


class LedgerStore:
    """The database behind the ledger: `requests` (raw rows), `rollups`, `task_rollups` and
    `route_rollups` (their aggregates, kept in step by `insert`), `api_keys` and `ledger_meta`
    tables."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_ledger_url()
        _make_sqlite_folder(self.url)  # the file's folder appears when the ledger first opens
        try:
            self.engine: Engine = create_engine(self.url, connect_args=_connect_args(self.url))
        except Exception as exc:  # bad URL or missing driver: SQLAlchemy raises several types
            raise ConfigError(f"cannot open the ledger database {self.url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self.engine.begin() as conn:
            migrate(conn)
            partitions.ensure_ahead(conn, time.time())
        metadata = MetaData()  # one reflection for all of them: on PostgreSQL a table at a time
        metadata.reflect(self.engine, only=list(TABLES))  # took ~1 s of every CLI start
        (
            self.requests,
            self.api_keys,
            self.rollups,
            self.meta,
            self.task_rollups,
            self.route_rollups,
        ) = (metadata.tables[name] for name in TABLES)

    def insert(self, rows: Iterable[dict[str, Any]]) -> int:
        """Store raw rows and add them to the rollups, in one transaction."""
        rows = list(rows)
        if rows:
            with self.engine.begin() as conn:
                rollups.apply_batch(conn, self.requests, self.rollups, rows)
                task_rollups.upsert(conn, self.task_rollups, task_rollups.increments(rows))
                route_rollups.upsert(conn, self.route_rollups, route_rollups.increments(rows))
        return len(rows)

    def rows(self, since: float | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows oldest first, optionally from `since` (unix seconds) and of one kind."""
        query = select(self.requests).order_by(self.requests.c.id)
        if since is not None:
            query = query.where(self.requests.c.ts >= since)
        if kind is not None:
            query = query.where(self.requests.c.kind == kind)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def spend_by_key(self) -> dict[str, float]:
        """$ spent per key id over all time: the budgets' starting point. Read from the daily
        rollups (the fewest rows), so pruning raw rows never changes it."""
        table = self.rollups
        query = (
            select(table.c.key_id, func.sum(table.c.cost_usd))
            .where(table.c.bucket_s == rollups.GRANULARITIES[-1], table.c.key_id != "")
            .group_by(table.c.key_id)
        )
        with self.engine.connect() as conn:
            return {key: float(total or 0.0) for key, total in conn.execute(query)}

    def reset(self) -> None:
        """Drop the pooled connections; the next use opens a fresh one. A connection keeps the
        state it opened in: SQLite opens a file that was read-only as read-only for good, and
        a pooled connection to a server that restarted is dead."""
        self.engine.dispose()

    def close(self) -> None:
        self.engine.dispose()
