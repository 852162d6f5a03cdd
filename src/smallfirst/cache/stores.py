"""Where cached answers live: the ledger's database (default), or Redis (`server.redis_url`,
so every replica shares the hits).

A store that fails (unreachable, corrupt, read-only) never fails a request: `get` is then a
miss and `put` a no-op, each logged. Entries expire after their route's TTL, and a route keeps
at most its `max_entries` (the oldest go first).
"""

from __future__ import annotations

import asyncio
import logging
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
    """The `response_cache` table (m008) of the ledger database; calls run in a thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def get(self, key: str) -> CachedAnswer | None:
        return await asyncio.to_thread(self._get, key)

    def _get(self, key: str) -> CachedAnswer | None:
        query = select(ENTRIES.c.entry, ENTRIES.c.expires_at).where(ENTRIES.c.key == key)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.expires_at <= time.time():
            return None
        return CachedAnswer.loads(row.entry)

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
