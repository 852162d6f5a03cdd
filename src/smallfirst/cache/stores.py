"""Where cached answers live: the ledger's database (default), or Redis (`server.redis_url`,
so every replica shares the hits).

A store that fails (unreachable, corrupt, read-only) never fails a request: `get` is then a
miss and `put` a no-op, each logged. Entries expire after their route's TTL, and a route keeps
at most its `max_entries` (the oldest go first).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from typing import Protocol

from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, delete, select

from smallfirst.cache.entry import CachedAnswer

log = logging.getLogger("smallfirst.cache")

ENTRIES = Table(
    "response_cache",
    MetaData(),
    Column("key", String(160), primary_key=True),
    Column("scope", String(120), nullable=False),
    Column("route", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("entry", Text, nullable=False),
)


class CacheStore(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(
        self, key: str, scope: str, route: str, answer: CachedAnswer, ttl_s: float, limit: int
    ) -> None: ...


async def safe_get(store: CacheStore, key: str) -> CachedAnswer | None:
    try:
        return await store.get(key)
    except Exception as exc:  # any store failure (driver, network, bad row) is a miss
        log.warning("response cache lookup failed, answering fresh: %s", exc)
        return None


async def safe_put(
    store: CacheStore, key: str, scope: str, route: str, answer: CachedAnswer, ttl_s: float,
    limit: int,
) -> None:  # fmt: skip
    try:
        await store.put(key, scope, route, answer, ttl_s, limit)
    except Exception as exc:  # an answer that could not be kept is only a later miss
        log.warning("response cache store failed, the answer is not kept: %s", exc)


class SqlStore:
    """The `response_cache` table (m008) of the ledger database; writes run in a thread, and
    so do reads, except from a SQLite file in WAL mode (the ledger's): see `SqliteReader`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = SqliteReader(engine) if SqliteReader.suits(engine) else None

    async def get(self, key: str) -> CachedAnswer | None:
        if self.reader is not None and self.reader.ready():
            return _answer(self.reader.get(key))
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> CachedAnswer | None:
        query = select(ENTRIES.c.entry, ENTRIES.c.expires_at).where(ENTRIES.c.key == key)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _answer(None if row is None else (row.entry, row.expires_at))

    async def put(
        self, key: str, scope: str, route: str, answer: CachedAnswer, ttl_s: float, limit: int
    ) -> None:
        await asyncio.to_thread(self._put, key, scope, route, answer, ttl_s, limit)

    def _put(
        self, key: str, scope: str, route: str, answer: CachedAnswer, ttl_s: float, limit: int
    ) -> None:
        now = time.time()
        row = {"key": key, "scope": scope, "route": route, "created_at": now}
        row |= {"expires_at": now + ttl_s, "entry": answer.dumps()}
        with self.engine.begin() as conn:
            conn.execute(delete(ENTRIES).where(ENTRIES.c.key == key))
            conn.execute(ENTRIES.insert().values(row))
            conn.execute(delete(ENTRIES).where(ENTRIES.c.expires_at <= now))
            oldest = (
                select(ENTRIES.c.key)
                .where(ENTRIES.c.route == route)
                .order_by(ENTRIES.c.created_at.desc())
                .offset(limit)
            )
            conn.execute(delete(ENTRIES).where(ENTRIES.c.key.in_(oldest.scalar_subquery())))

    def clear(self, route: str | None = None, scope: str | None = None) -> int:
        query = delete(ENTRIES)
        if route is not None:
            query = query.where(ENTRIES.c.route == route)
        if scope is not None:
            query = query.where(ENTRIES.c.scope == scope)
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount or 0


def _answer(row: tuple[str, float] | None) -> CachedAnswer | None:
    if row is None or row[1] <= time.time():
        return None
    return CachedAnswer.loads(row[0])


class SqliteReader:
    """An exact hit's read, inline on the event loop, from one connection of its own.

    Measured (benchmarks/cache.py): the threaded SQLAlchemy read cost ~0.5 ms of an exact hit
    (a thread hop ~0.1 ms, more under load, and ~0.25 ms of Core statement handling) where the
    primary-key read itself takes ~10 us. In WAL mode a reader never waits for the writer, and
    this connection's busy timeout is short anyway, so the loop is never held for long; a
    journal in another mode turns the inline path off (reads go back to the thread). A failed
    read closes the connection (the next read opens a fresh one) and is a miss upstream.
    """

    BUSY_TIMEOUT_MS = 50
    SELECT = "SELECT entry, expires_at FROM response_cache WHERE key = ?"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.usable = True
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @staticmethod
    def suits(engine: Engine) -> bool:
        database = engine.url.database
        return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"

    def ready(self) -> bool:
        """Open on first use; False (for good) when the file is not in WAL mode."""
        if self.usable and self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._open()
        return self.usable

    def get(self, key: str) -> tuple[str, float] | None:
        with self._lock:
            try:
                connection = self._connection or self._open()
                return connection.execute(self.SELECT, (key,)).fetchone()
            except Exception:
                self.close()
                raise

    def _open(self) -> sqlite3.Connection:
        pooled = self.engine.raw_connection()  # the ledger's pragmas applied on connect
        connection = pooled.driver_connection
        pooled.detach()  # ours from now on: the pool neither reuses nor closes it
        assert isinstance(connection, sqlite3.Connection)
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() != "wal":
            self.usable = False
            connection.close()
            log.info("response cache: the SQLite file is not in WAL mode; reads run in a thread")
        else:
            connection.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
            self._connection = connection
        return connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


REDIS_PREFIX = "smallfirst:cache:"


class RedisStore:
    """One string per entry (expiring by TTL) and one sorted set per route (by age), so the
    size limit drops the oldest and `clear` finds a route's or a scope's entries."""

    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self.redis.get(REDIS_PREFIX + key)
        return None if raw is None else CachedAnswer.loads(raw)

    async def put(
        self, key: str, scope: str, route: str, answer: CachedAnswer, ttl_s: float, limit: int
    ) -> None:
        index = f"{REDIS_PREFIX}route:{route}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(REDIS_PREFIX + key, answer.dumps(), px=max(1, int(ttl_s * 1000)))
            pipe.zadd(index, {key: time.time()})
            pipe.zrange(index, 0, -limit - 1)
            pipe.zremrangebyrank(index, 0, -limit - 1)
            results = await pipe.execute()
        evicted = results[2]
        if evicted:
            await self.redis.delete(*(REDIS_PREFIX + k.decode() for k in evicted))

    async def clear(self, route: str | None = None, scope: str | None = None) -> int:
        removed = 0
        async for index in self.redis.scan_iter(match=f"{REDIS_PREFIX}route:*"):
            name = index.decode()[len(f"{REDIS_PREFIX}route:") :]
            if route is not None and name != route:
                continue
            members = await self.redis.zrange(index, 0, -1)
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in members]
            keys = [k for k in keys if scope is None or k.startswith(scope + "|")]
            if keys:
                removed += await self.redis.delete(*(REDIS_PREFIX + k for k in keys))
                await self.redis.zrem(index, *keys)
        return removed

    async def aclose(self) -> None:
        await self.redis.aclose()
