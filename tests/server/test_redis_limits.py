"""RedisLimiter: the in-memory limiter's rules, shared through a real Redis server."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from smallfirst.errors import BudgetExceededError, ConfigError, RateLimitError
from smallfirst.ledger.keys import ApiKey
from smallfirst.server.limits import Reservation
from smallfirst.server.redis_limits import LimitsUnavailableError, RedisLimiter
from tests.server.redis_server import redis_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def key(**limits) -> ApiKey:
    return ApiKey(id=secrets.token_hex(4), name="team-a", key_hash="x", **limits)


@pytest.fixture
async def limiters(redis_url: str) -> AsyncIterator[list[RedisLimiter]]:  # noqa: F811
    """Two replicas' limiters on one Redis, closed (settlements drained) after the test."""
    replicas = [RedisLimiter.from_url(redis_url) for _ in range(2)]
    yield replicas
    for limiter in replicas:
        await limiter.aclose()


async def test_rpm_is_exact_across_limiters_sharing_redis(limiters: list[RedisLimiter]) -> None:
    k = key(rpm=5)

    async def attempt(i: int) -> bool:
        try:
            await limiters[i % 2].reserve(k, 1, 0.0)
            return True
        except RateLimitError as exc:
            assert 0 < exc.retry_after <= 60
            return False

    admitted = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sum(admitted) == 5


async def test_budget_is_never_exceeded_by_concurrent_requests(
    limiters: list[RedisLimiter],
) -> None:
    k = key(budget_usd=1.0)

    async def attempt(i: int) -> float:
        limiter = limiters[i % 2]
        try:
            reservation = await limiter.reserve(k, 1, 0.3)
        except BudgetExceededError:
            return 0.0
        limiter.settle(reservation, 1, 0.25)
        return 0.25

    charged = await asyncio.gather(*(attempt(i) for i in range(30)))
    spent = await limiters[0].spent(k.id)
    assert spent == pytest.approx(sum(charged)) and spent <= 1.0
    assert sum(1 for c in charged if c) >= 3  # 3 x 0.3 fit however the requests interleave


async def test_tpm_counts_settled_tokens_not_estimates(limiters: list[RedisLimiter]) -> None:
    limiter = limiters[0]
    k = key(tpm=100)
    first = await limiter.reserve(k, 90, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.reserve(k, 20, 0.0)
    assert "90 used" in caught.value.message
    limiter.settle(first, 30, 0.0)
    await limiter.reserve(k, 20, 0.0)
    with pytest.raises(RateLimitError) as too_large:
        await limiter.reserve(k, 101, 0.0)
    assert too_large.value.code == "request_too_large"


async def test_budget_counts_in_flight_then_spent(limiters: list[RedisLimiter]) -> None:
    limiter, other = limiters
    k = key(budget_usd=1.0)
    first = await limiter.reserve(k, 1, 0.6)
    with pytest.raises(BudgetExceededError) as in_flight:
        await other.reserve(k, 1, 0.6)  # the other replica sees the reservation
    assert in_flight.value.retry_after == 1.0
    limiter.settle(first, 1, 0.5)
    await limiter.spent(k.id)  # the settlement has reached Redis
    await other.reserve(k, 1, 0.4)
    assert await other.spent(k.id) == pytest.approx(0.5)


async def test_a_replica_sees_its_own_settlement_on_the_next_request(
    limiters: list[RedisLimiter],
) -> None:
    """Settling runs in the background; the same key's next reservation waits for it, so a
    request right after a cheaper-than-estimated one is not refused on a stale estimate."""
    limiter = limiters[0]
    k = key(budget_usd=1.0)
    first = await limiter.reserve(k, 1, 0.6)
    limiter.settle(first, 1, 0.2)
    await limiter.reserve(k, 1, 0.6)  # 0.2 spent + 0.6 fits; 0.6 + 0.6 in flight would not


async def test_aclose_waits_for_settlements_under_way(redis_url: str) -> None:  # noqa: F811
    limiter, reader = RedisLimiter.from_url(redis_url), RedisLimiter.from_url(redis_url)
    k = key(budget_usd=1.0)
    for _ in range(3):
        limiter.settle(await limiter.reserve(k, 1, 0.1), 1, 0.1)
    await limiter.aclose()
    assert await reader.spent(k.id) == pytest.approx(0.3)
    await reader.aclose()


async def test_load_spend_never_lowers_the_shared_total(limiters: list[RedisLimiter]) -> None:
    limiter = limiters[0]
    k = key(budget_usd=1.0)
    await limiter.load_spend({k.id: 0.7})
    await limiter.load_spend({k.id: 0.2})  # a replica whose ledger is behind
    assert await limiter.spent(k.id) == pytest.approx(0.7)
    with pytest.raises(BudgetExceededError):
        await limiter.reserve(k, 1, 0.5)
    await limiter.load_spend({k.id: 1.0})
    with pytest.raises(BudgetExceededError) as spent:
        await limiter.reserve(k, 1, 0.0)
    assert "has spent" in spent.value.message


def test_redis_url_without_redis_py_is_a_config_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigError, match="pip install 'smallfirst\\[redis\\]'"):
        RedisLimiter.from_url("redis://127.0.0.1:1/0")


async def test_a_silent_redis_does_not_block_the_event_loop() -> None:
    """A Redis that accepts and never answers holds up the request waiting on it, not the
    loop: other work keeps running, and the reservation fails once the connection drops."""
    pytest.importorskip("redis", reason="redis-py missing: pip install -e '.[dev]'")
    from redis.asyncio import Redis

    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(Redis.from_url(f"redis://127.0.0.1:{port}/0"))  # no socket timeout
    reserving = asyncio.create_task(limiter.reserve(key(rpm=1), 1, 0.0))
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and not reserving.done()  # the loop ran on while Redis was silent
    release.set()
    with pytest.raises(LimitsUnavailableError):
        await reserving
    server.close()
    await server.wait_closed()


async def test_unreachable_redis_refuses_with_503_and_settle_does_not_raise(caplog) -> None:
    from smallfirst.testing import free_port

    limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LimitsUnavailableError) as caught:
        await limiter.reserve(key(rpm=1), 1, 0.0)
    assert caught.value.status == 503 and "unreachable" in caught.value.message
    assert caught.value.headers["Retry-After"] == "1"
    calls: list[dict] = []

    async def counted(**kwargs) -> list[bytes]:
        calls.append(kwargs)
        return [b"ok"]

    limiter._reserve = counted
    with pytest.raises(LimitsUnavailableError):
        await limiter.reserve(key(rpm=1), 1, 0.0)
    assert calls == []  # within DOWN_RECHECK_S the refusal does not wait on Redis again
    limiter.settle(Reservation("k", 1, 0.1, [], "m-1"), 1, 0.1)
    await limiter.aclose()  # waits for the failed settlement; nothing raised
    assert "could not settle" in caplog.text
