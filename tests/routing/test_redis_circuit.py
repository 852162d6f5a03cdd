"""RedisCircuitBreaker: one breaker state seen by every replica (two instances here)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from smallfirst.routing.circuit import CircuitBreaker
from smallfirst.routing.redis_circuit import RedisCircuitBreaker
from tests.server.redis_server import redis_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def breakers(url: str, cooldown_s: float) -> tuple[RedisCircuitBreaker, RedisCircuitBreaker]:
    from redis.asyncio import Redis

    return (
        RedisCircuitBreaker(Redis.from_url(url), failure_threshold=2, cooldown_s=cooldown_s),
        RedisCircuitBreaker(Redis.from_url(url), failure_threshold=2, cooldown_s=cooldown_s),
    )


def test_failures_on_one_replica_open_the_circuit_for_both(redis_url: str) -> None:  # noqa: F811
    async def scenario() -> None:
        a, b = breakers(redis_url, cooldown_s=0.3)
        assert isinstance(a, CircuitBreaker)
        model = f"m-{secrets.token_hex(3)}"
        await a.record_failure(model)
        assert await b.available(model)  # one failure: still closed
        await b.record_failure(model)
        assert not await a.available(model) and not await b.available(model)
        assert await a.is_open(model)
        await asyncio.sleep(0.4)  # past the cooldown: exactly one half-open trial, anywhere
        trials = [await a.available(model), await b.available(model)]
        assert trials == [True, False]
        await a.record_success(model)
        assert await b.available(model) and not await b.is_open(model)

    asyncio.run(scenario())


def test_a_failed_trial_reopens_and_a_lost_trial_expires(redis_url: str) -> None:  # noqa: F811
    async def scenario() -> None:
        a, b = breakers(redis_url, cooldown_s=0.3)
        model = f"m-{secrets.token_hex(3)}"
        for _ in range(2):
            await a.record_failure(model)
        await asyncio.sleep(0.4)
        assert await a.available(model)  # a takes the trial ...
        await a.record_failure(model)  # ... which fails: open again
        assert not await b.available(model)
        await asyncio.sleep(0.4)
        assert await b.available(model)  # b's trial; b "crashes" and never reports
        assert not await a.available(model)
        await asyncio.sleep(0.4)
        assert await a.available(model)  # the lost trial expired after a cooldown

    asyncio.run(scenario())
