"""The in-memory limiter on its own, with a hand-driven clock."""

from __future__ import annotations

import asyncio

import pytest

from smallfirst.errors import BudgetExceededError, RateLimitError
from smallfirst.ledger.keys import ApiKey
from smallfirst.server.limits import InMemoryLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**limits) -> ApiKey:
    return ApiKey(id="k1", name="team-a", key_hash="x", **limits)


async def test_rpm_window_slides_and_retry_after_counts_down() -> None:
    clock = Clock()
    limiter = InMemoryLimiter(clock)
    k = key(rpm=2)
    await limiter.reserve(k, 1, 0.0)
    clock.now += 10
    await limiter.reserve(k, 1, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.reserve(k, 1, 0.0)
    assert caught.value.retry_after == pytest.approx(50)
    assert caught.value.headers["Retry-After"] == "50"
    clock.now += 50.5
    await limiter.reserve(k, 1, 0.0)  # the first request left the window


async def test_tpm_counts_settled_tokens_not_estimates() -> None:
    clock = Clock()
    limiter = InMemoryLimiter(clock)
    k = key(tpm=100)
    first = await limiter.reserve(k, 90, 0.0)
    with pytest.raises(RateLimitError):
        await limiter.reserve(k, 20, 0.0)
    limiter.settle(first, 30, 0.0)  # it used far fewer tokens than estimated
    await limiter.reserve(k, 20, 0.0)
    with pytest.raises(RateLimitError) as caught:
        await limiter.reserve(k, 101, 0.0)
    assert caught.value.code == "request_too_large"


async def test_budget_counts_in_flight_reservations_then_real_spend() -> None:
    limiter = InMemoryLimiter(Clock())
    k = key(budget_usd=1.0)
    a = await limiter.reserve(k, 1, 0.6)
    with pytest.raises(BudgetExceededError) as caught:
        await limiter.reserve(k, 1, 0.6)
    assert caught.value.code == "insufficient_quota" and caught.value.retry_after == 1.0
    limiter.settle(a, 1, 0.2)
    b = await limiter.reserve(k, 1, 0.6)
    limiter.settle(b, 1, 0.8)
    assert limiter.spent("k1") == pytest.approx(1.0)
    with pytest.raises(BudgetExceededError) as caught:
        await limiter.reserve(k, 1, 0.0)
    assert "spent" in caught.value.message and caught.value.retry_after is None


async def test_spend_loaded_from_the_ledger_counts_against_the_budget() -> None:
    limiter = InMemoryLimiter(Clock())
    await limiter.load_spend({"k1": 5.0})
    with pytest.raises(BudgetExceededError):
        await limiter.reserve(key(budget_usd=5.0), 1, 0.0)
    await limiter.reserve(key(budget_usd=6.0), 1, 0.5)


async def test_refused_requests_take_no_slot() -> None:
    limiter = InMemoryLimiter(Clock())
    k = key(rpm=1, budget_usd=1.0)
    with pytest.raises(BudgetExceededError):
        await limiter.reserve(k, 1, 2.0)
    await limiter.reserve(k, 1, 0.1)


async def test_concurrent_requests_cannot_share_the_last_slot() -> None:
    limiter = InMemoryLimiter(Clock())
    k = key(rpm=5)

    async def attempt() -> bool:
        try:
            await limiter.reserve(k, 1, 0.0)
            return True
        except RateLimitError:
            return False

    assert sum(await asyncio.gather(*(attempt() for _ in range(20)))) == 5
