"""Per-key budgets and rate limits: reserve before calling a model, settle after.

`Limiter` is the seam: `InMemoryLimiter` is exact for one process (checks and reservations
happen together under one lock, so concurrent requests cannot both take the last slot); a
shared store (Redis) implements the same methods for several replicas.

`reserve` is awaited (a shared store answers over the network, and the request path must not
block the event loop on it). `settle` is a plain call that never waits: it runs as a request
finishes, also in a stream's cleanup, where nothing may be awaited. A shared store completes it
in the background; until then the reservation keeps counting at its estimate, which is never
below the real cost, so no budget is passed meanwhile.

Budget policy: a request is admitted while spent + in-flight estimates + its own estimate stay
within the key's budget. The estimate is the request's worst case (`server/admission.py`: the
whole prompt, images, `max_tokens` or `DEFAULT_OUTPUT_ESTIMATE`, every rung of a cascade), so
as long as no request costs more than it reserved, spend never passes the budget; settling
replaces the estimate with the real cost (for an abandoned stream, what was delivered).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from smallfirst.errors import BudgetExceededError, RateLimitError
from smallfirst.ledger.keys import ApiKey

WINDOW_S = 60.0
DEFAULT_OUTPUT_ESTIMATE = 256


@dataclass(slots=True)
class Reservation:
    key_id: str
    tokens: int
    cost_usd: float
    slot: list[float] = field(default_factory=list)
    """[time, tokens] in the key's token window; settling corrects the tokens in place."""
    member: str = ""
    """The reservation's id in a shared store (RedisLimiter); unused in memory."""


class Limiter(Protocol):
    async def reserve(self, key: ApiKey, tokens: int, cost_usd: float) -> Reservation:
        """Admit one request or raise RateLimitError / BudgetExceededError (429)."""
        ...

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        """Replace the estimate with what the request really used (0, 0 if it failed);
        returns at once (see the module docstring)."""
        ...

    async def load_spend(self, spent: dict[str, float]) -> None:
        """Start each key's spend from the ledger (at startup)."""
        ...

    async def aclose(self) -> None:
        """Finish settlements still under way and close connections (at shutdown)."""
        ...


@dataclass(slots=True)
class _KeyState:
    spent: float = 0.0
    reserved: float = 0.0
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[list[float]] = field(default_factory=deque)


class InMemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _KeyState] = {}

    async def load_spend(self, spent: dict[str, float]) -> None:
        with self._lock:
            for key_id, total in spent.items():
                self._keys.setdefault(key_id, _KeyState()).spent = total

    def spent(self, key_id: str) -> float:
        state = self._keys.get(key_id)
        return state.spent if state else 0.0

    async def reserve(self, key: ApiKey, tokens: int, cost_usd: float) -> Reservation:
        with self._lock:
            now = self._clock()
            state = self._keys.setdefault(key.id, _KeyState())
            _expire(state, now - WINDOW_S)
            _check_budget(key, state, cost_usd)
            _check_rpm(key, state, now)
            _check_tpm(key, state, now, tokens)
            state.requests.append(now)
            slot = [now, float(tokens)]
            state.tokens.append(slot)
            state.reserved += cost_usd
            return Reservation(key.id, tokens, cost_usd, slot)

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        with self._lock:
            state = self._keys.setdefault(reservation.key_id, _KeyState())
            state.reserved = max(0.0, state.reserved - reservation.cost_usd)
            state.spent += cost_usd
            reservation.slot[1] = float(tokens)

    async def aclose(self) -> None:
        """Nothing to finish: settling in memory is immediate."""


def _expire(state: _KeyState, cutoff: float) -> None:
    while state.requests and state.requests[0] <= cutoff:
        state.requests.popleft()
    while state.tokens and state.tokens[0][0] <= cutoff:
        state.tokens.popleft()


def _check_budget(key: ApiKey, state: _KeyState, cost_usd: float) -> None:
    if key.budget_usd is None:
        return
    if state.spent >= key.budget_usd:
        raise BudgetExceededError(
            f"API key {key.name!r} has spent ${state.spent:.6f} of its ${key.budget_usd:g} budget"
        )
    if state.spent + state.reserved + cost_usd > key.budget_usd:
        in_flight = state.reserved > 0
        raise BudgetExceededError(
            f"API key {key.name!r}: this request (estimated ${cost_usd:.6f}) would exceed the "
            f"${key.budget_usd:g} budget (spent ${state.spent:.6f}, "
            f"in flight ${state.reserved:.6f})",
            retry_after=1.0 if in_flight else None,
        )


def _check_rpm(key: ApiKey, state: _KeyState, now: float) -> None:
    if key.rpm is not None and len(state.requests) >= key.rpm:
        wait = state.requests[0] + WINDOW_S - now
        raise RateLimitError(
            f"API key {key.name!r} is limited to {key.rpm} requests per minute",
            retry_after=wait,
        )


def _check_tpm(key: ApiKey, state: _KeyState, now: float, tokens: int) -> None:
    if key.tpm is None:
        return
    if tokens > key.tpm:
        raise RateLimitError(
            f"this request needs about {tokens} tokens; API key {key.name!r} is limited to "
            f"{key.tpm} tokens per minute",
            code="request_too_large",
        )
    used = sum(slot[1] for slot in state.tokens)
    if used + tokens > key.tpm:
        freed, wait = used, WINDOW_S
        for at, count in state.tokens:
            freed -= count
            if freed + tokens <= key.tpm:
                wait = at + WINDOW_S - now
                break
        raise RateLimitError(
            f"API key {key.name!r} is limited to {key.tpm} tokens per minute "
            f"({int(used)} used in the last minute)",
            retry_after=wait,
        )
