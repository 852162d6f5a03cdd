"""The circuit breaker's state in Redis, so every gateway replica sees the same cooldowns.

Same policy as `InMemoryCircuitBreaker` (closed -> open after `failure_threshold` consecutive
failures -> one half-open trial after `cooldown_s`), each transition one Lua script on Redis'
own clock. A half-open trial whose replica died is given up after another `cooldown_s`, so a
crash cannot keep a model closed off for good.
"""

from __future__ import annotations

import time
from typing import Any

_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_AVAILABLE = (
    _CLOCK
    + """
local threshold, cooldown = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'failures', 'open_until', 'probe_at')
local failures = tonumber(state[1] or '0')
if failures == 0 then return 2 end
if failures < threshold then return 1 end
if now < tonumber(state[2] or '0') then return 0 end
local probe = tonumber(state[3] or '0')
if probe > 0 and now < probe + cooldown then return 0 end
redis.call('HSET', KEYS[1], 'probe_at', now)
return 1
"""
)

_FAILURE = (
    _CLOCK
    + """
local threshold, cooldown, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'probe_at', 0)
if failures >= threshold then redis.call('HSET', KEYS[1], 'open_until', now + cooldown) end
redis.call('EXPIRE', KEYS[1], ttl)
return failures
"""
)

_IS_OPEN = (
    _CLOCK
    + """
local state = redis.call('HMGET', KEYS[1], 'failures', 'open_until')
if tonumber(state[1] or '0') >= tonumber(ARGV[1]) and now < tonumber(state[2] or '0') then
  return 1
end
return 0
"""
)


class RedisCircuitBreaker:
    """`CircuitBreaker` over a `redis.asyncio` client shared by all replicas."""

    def __init__(
        self,
        client: Any,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        prefix: str = "sf:circuit:",
    ) -> None:
        self.client = client
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.prefix = prefix
        self.ttl_s = int(max(3600.0, 10 * cooldown_s))
        """Forget a model's failures after this long without a new one."""
        self.trust_s = 1.0
        """How long a replica trusts "no failures" before asking Redis again."""
        self._healthy_until: dict[str, float] = {}
        self._available = client.register_script(_AVAILABLE)
        self._failure = client.register_script(_FAILURE)
        self._is_open = client.register_script(_IS_OPEN)

    def _key(self, model: str) -> str:
        return self.prefix + model

    async def available(self, model: str) -> bool:
        args = [self.failure_threshold, self.cooldown_s]
        answer = await self._available(keys=[self._key(model)], args=args)
        if answer == 2:  # no failures at all: trust that for a moment without asking again
            self._healthy_until[model] = time.monotonic() + self.trust_s
        return bool(answer)

    def closed(self, model: str) -> bool:
        """Healthy when Redis said so less than `trust_s` ago and this replica saw no failure
        since: at most one round trip per model per `trust_s` on the happy path."""
        return time.monotonic() < self._healthy_until.get(model, 0.0)

    async def record_success(self, model: str) -> None:
        await self.client.delete(self._key(model))
        self._healthy_until[model] = time.monotonic() + self.trust_s

    async def record_failure(self, model: str) -> None:
        self._healthy_until.pop(model, None)
        args = [self.failure_threshold, self.cooldown_s, self.ttl_s]
        await self._failure(keys=[self._key(model)], args=args)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def is_open(self, model: str) -> bool:
        """For reports and tests: is the model cooling down right now?"""
        return bool(await self._is_open(keys=[self._key(model)], args=[self.failure_threshold]))
