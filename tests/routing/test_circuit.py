"""The in-process circuit breaker, on a clock the test moves."""

from __future__ import annotations

from smallfirst.routing.circuit import CircuitBreaker, InMemoryCircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_opens_after_consecutive_failures_and_half_opens_after_cooldown():
    clock = Clock()
    breaker = InMemoryCircuitBreaker(failure_threshold=2, cooldown_s=10, clock=clock)
    assert isinstance(breaker, CircuitBreaker)
    await breaker.record_failure("m")
    assert await breaker.available("m")
    await breaker.record_failure("m")
    assert not await breaker.available("m") and breaker.is_open("m")
    clock.now = 10.5
    assert await breaker.available("m")  # the one trial call
    assert not await breaker.available("m")  # others wait for the trial's outcome
    await breaker.record_failure("m")
    assert not await breaker.available("m")
    clock.now = 21.0
    assert await breaker.available("m")
    await breaker.record_success("m")
    assert await breaker.available("m") and await breaker.available("m")
    assert not breaker.is_open("m")


async def test_a_success_resets_the_count_and_models_are_independent():
    breaker = InMemoryCircuitBreaker(failure_threshold=2, cooldown_s=10, clock=Clock())
    await breaker.record_failure("m")
    await breaker.record_success("m")
    await breaker.record_failure("m")
    assert await breaker.available("m")
    await breaker.record_failure("other")
    await breaker.record_failure("other")
    assert not await breaker.available("other") and await breaker.available("m")
