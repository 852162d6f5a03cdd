"""Circuit breaker: stop sending traffic to a deployment that keeps failing, for a while.

The interface is three async calls so a shared (e.g. Redis-backed) breaker for several gateway
replicas can replace the in-process one without touching the fallback logic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class CircuitBreaker(Protocol):
    async def available(self, model: str) -> bool:
        """False while the model cools down after too many consecutive failures."""
        ...

    def closed(self, model: str) -> bool:
        """True when the model is known to be healthy, without I/O: the caller may skip
        `available` (and `record_success`), which keeps the happy path free of breaker work.
        False means "ask `available`", not "open"."""
        ...

    async def record_success(self, model: str) -> None: ...

    async def record_failure(self, model: str) -> None: ...


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


class InMemoryCircuitBreaker:
    """Per-process breaker: closed -> open after `failure_threshold` consecutive failures ->
    half-open after `cooldown_s` (one trial call) -> closed on success, open again on failure."""

    def __init__(
        self,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._states: dict[str, _State] = {}
        self._lock = asyncio.Lock()

    def _state(self, model: str) -> _State:
        return self._states.setdefault(model, _State())

    async def available(self, model: str) -> bool:
        async with self._lock:
            state = self._state(model)
            if state.failures < self.failure_threshold:
                return True
            if self.clock() < state.open_until or state.probing:
                return False
            state.probing = True  # half-open: let exactly one trial through
            return True

    def closed(self, model: str) -> bool:
        state = self._states.get(model)
        return state is None or state.failures == 0

    async def record_success(self, model: str) -> None:
        async with self._lock:
            self._states[model] = _State()

    async def record_failure(self, model: str) -> None:
        async with self._lock:
            state = self._state(model)
            state.failures += 1
            state.probing = False
            if state.failures >= self.failure_threshold:
                state.open_until = self.clock() + self.cooldown_s

    def is_open(self, model: str) -> bool:
        """For reports and tests: is the model cooling down right now?"""
        state = self._states.get(model)
        return bool(
            state and state.failures >= self.failure_threshold and self.clock() < state.open_until
        )
