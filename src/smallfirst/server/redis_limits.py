"""Per-key rate limits and budgets shared by several gateway replicas, in Redis.

Same three methods as `InMemoryLimiter`; each is one Lua script, so checking and reserving are
one atomic step on the Redis server and two replicas cannot both take a key's last slot. Time
is Redis' own clock (`TIME`), so replicas with skewed clocks still share one window.

Per key (hash-tagged `sf:{<key id>}:...` so a Redis Cluster keeps them on one node):
`req` (zset request -> time) for rpm, `tok`/`tokn` (zset time + hash tokens) for tpm, `fly`/`flyc`
(zset time + hash cost) for in-flight estimates, `spent` (float) for the budget. A reservation
that is never settled (its replica crashed) stops counting after `STALE_RESERVATION_S`.

The client is redis-py's asyncio one: a reservation is one awaited round trip, so a slow or
silent Redis holds up only the requests waiting on it, never the event loop. Settling runs as a
background task (`Limiter.settle` must not wait); the same replica's next reservation for that
key waits for it first, so a key's requests through one replica always see each other's real
costs, and `aclose` waits for all of them at shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import time
from typing import Any

from smallfirst.errors import BudgetExceededError, ConfigError, RateLimitError, SmallfirstError
from smallfirst.ledger.keys import ApiKey
from smallfirst.server.limits import WINDOW_S, Reservation

log = logging.getLogger("smallfirst.limits")
STALE_RESERVATION_S = 900.0
DOWN_RECHECK_S = 1.0
"""After Redis failed, refuse at once for this long instead of letting every request wait out
the connect timeout on it (a backlog of stalled requests under load)."""


class LimitsUnavailableError(SmallfirstError):
    """Redis is down: refuse (503, retry) rather than serve a key without its limits."""

    status = 503
    error_type = "limits_unavailable"


_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_RESERVE = (
    _CLOCK
    + """
local req, tok, tokn, fly, flyc, spentk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, cost, member = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local window, stale = tonumber(ARGV[7]), tonumber(ARGV[8])
local cutoff = now - window
redis.call('ZREMRANGEBYSCORE', req, '-inf', cutoff)
local old = redis.call('ZRANGEBYSCORE', tok, '-inf', cutoff, 'LIMIT', 0, 1000)
if #old > 0 then redis.call('ZREM', tok, unpack(old)); redis.call('HDEL', tokn, unpack(old)) end
old = redis.call('ZRANGEBYSCORE', fly, '-inf', now - stale, 'LIMIT', 0, 1000)
if #old > 0 then redis.call('ZREM', fly, unpack(old)); redis.call('HDEL', flyc, unpack(old)) end
if budget >= 0 then
  local spent = tonumber(redis.call('GET', spentk) or '0')
  if spent >= budget then return {'budget_spent', tostring(spent)} end
  local reserved = 0
  for _, c in ipairs(redis.call('HVALS', flyc)) do reserved = reserved + tonumber(c) end
  if spent + reserved + cost > budget then
    return {'budget_exceeded', tostring(spent), tostring(reserved)}
  end
end
if rpm >= 0 and redis.call('ZCARD', req) >= rpm then
  local first = redis.call('ZRANGE', req, 0, 0, 'WITHSCORES')
  return {'rpm', tostring(tonumber(first[2]) + window - now)}
end
if tpm >= 0 then
  if tokens > tpm then return {'tpm_too_large'} end
  local members = redis.call('ZRANGE', tok, 0, -1, 'WITHSCORES')
  local used, counts = 0, {}
  for i = 1, #members, 2 do
    local n = tonumber(redis.call('HGET', tokn, members[i]) or '0')
    counts[#counts + 1] = {tonumber(members[i + 1]), n}
    used = used + n
  end
  if used + tokens > tpm then
    local freed, wait = used, window
    for _, slot in ipairs(counts) do
      freed = freed - slot[2]
      if freed + tokens <= tpm then wait = slot[1] + window - now; break end
    end
    return {'tpm', tostring(used), tostring(wait)}
  end
end
redis.call('ZADD', req, now, member)
redis.call('ZADD', tok, now, member)
redis.call('HSET', tokn, member, tokens)
redis.call('ZADD', fly, now, member)
redis.call('HSET', flyc, member, cost)
for _, k in ipairs({req, tok, tokn}) do redis.call('EXPIRE', k, math.ceil(window) + 1) end
for _, k in ipairs({fly, flyc}) do redis.call('EXPIRE', k, math.ceil(stale) + 1) end
return {'ok'}
"""
)

_SETTLE = """
local tok, tokn, fly, flyc, spentk = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, tokens, cost = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZREM', fly, member)
redis.call('HDEL', flyc, member)
if redis.call('ZSCORE', tok, member) then redis.call('HSET', tokn, member, tokens) end
if cost > 0 then redis.call('INCRBYFLOAT', spentk, cost) end
return 1
"""

_LOAD_SPEND = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def _keys(prefix: str, key_id: str, *names: str) -> list[str]:
    return [f"{prefix}{{{key_id}}}:{name}" for name in names]


class RedisLimiter:
    """`Limiter` over one Redis server, shared by every replica pointing at it."""

    def __init__(self, client: Any, prefix: str = "sf:") -> None:
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._load = client.register_script(_LOAD_SPEND)
        self._ids = itertools.count(1)
        self._replica = secrets.token_hex(6)
        self._down_until = 0.0
        self._down_reason = ""
        self._settling: dict[str, set[asyncio.Task[None]]] = {}
        """Settlements under way, per key id (held here: the loop keeps only weak references)."""

    @classmethod
    def from_url(cls, url: str) -> RedisLimiter:
        """A limiter on `url` (`redis://host:port/db`); ConfigError when redis-py is missing."""
        return cls(redis_client(url))

    async def load_spend(self, spent: dict[str, float]) -> None:
        """Raise each key's shared spend to the ledger's total; never lower it (another replica
        may have charged requests whose rows are not stored yet)."""
        for key_id, total in spent.items():
            await self._load(keys=_keys(self.prefix, key_id, "spent"), args=[repr(float(total))])

    async def spent(self, key_id: str) -> float:
        await self._settled(key_id)
        return float(await self.client.get(_keys(self.prefix, key_id, "spent")[0]) or 0.0)

    async def reserve(self, key: ApiKey, tokens: int, cost_usd: float) -> Reservation:
        member = f"{self._replica}-{next(self._ids)}"
        args = [
            -1 if key.rpm is None else key.rpm,
            -1 if key.tpm is None else key.tpm,
            -1 if key.budget_usd is None else repr(float(key.budget_usd)),
            tokens,
            repr(float(cost_usd)),
            member,
            WINDOW_S,
            STALE_RESERVATION_S,
        ]
        keys = _keys(self.prefix, key.id, "req", "tok", "tokn", "fly", "flyc", "spent")
        if time.monotonic() < self._down_until:  # fail fast: do not wait on Redis again
            raise LimitsUnavailableError(self._down_reason, headers={"Retry-After": "1"})
        await self._settled(key.id)
        try:
            verdict = [_text(v) for v in await self._reserve(keys=keys, args=args)]
        except Exception as exc:  # redis-py raises RedisError subclasses and OSError
            self._down_until = time.monotonic() + DOWN_RECHECK_S
            self._down_reason = (
                f"the shared rate-limit store (Redis) is unreachable: {type(exc).__name__}: "
                f"{exc}; retry shortly"
            )
            log.error("limits: %s", self._down_reason)
            raise LimitsUnavailableError(self._down_reason, headers={"Retry-After": "1"}) from exc
        if verdict[0] != "ok":
            raise _refusal(key, verdict, tokens, cost_usd)
        return Reservation(key.id, tokens, cost_usd, [0.0, float(tokens)], member)

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        """Start settling in the background (needs the running loop); never raises."""
        task = asyncio.get_running_loop().create_task(
            self._settle_now(reservation, tokens, cost_usd)
        )
        pending = self._settling.setdefault(reservation.key_id, set())
        pending.add(task)
        task.add_done_callback(functools.partial(self._forget, reservation.key_id))

    async def aclose(self) -> None:
        """Wait for every settlement under way, then close the connections."""
        pending = [task for tasks in self._settling.values() for task in tasks]
        if pending:
            await asyncio.wait(pending)
        await self.client.aclose()

    async def _settled(self, key_id: str) -> None:
        """Wait until this replica's settlements for `key_id` have reached Redis (or failed)."""
        pending = self._settling.get(key_id)
        if pending:
            await asyncio.wait(set(pending))

    def _forget(self, key_id: str, task: asyncio.Task[None]) -> None:
        pending = self._settling.get(key_id)
        if pending is not None:
            pending.discard(task)
            if not pending:
                del self._settling[key_id]

    async def _settle_now(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        keys = _keys(self.prefix, reservation.key_id, "tok", "tokn", "fly", "flyc", "spent")
        try:
            await self._settle(keys=keys, args=[reservation.member, tokens, repr(float(cost_usd))])
        except Exception:  # the ledger still has the row; restarts reload spend from it
            log.exception(
                "limits: could not settle %s for key %s in Redis ($%.6f not added to the "
                "shared spend until a replica restarts and reloads it from the ledger)",
                reservation.member,
                reservation.key_id,
                cost_usd,
            )


def redis_client(url: str) -> Any:
    """A redis-py asyncio client (decoded replies off: scripts return bytes we decode
    ourselves). It connects on first use, inside the loop that serves requests. The connect
    timeout leaves room for a busy event loop (0.5 s refused requests on a loaded 2-core
    machine with Redis up); a Redis that is down refuses its connection at once anyway."""
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ConfigError(
            "server.redis_url is set but the redis package is missing: "
            "pip install 'smallfirst[redis]'"
        ) from exc
    return redis.asyncio.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=2.0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _refusal(
    key: ApiKey, verdict: list[str], tokens: int, cost_usd: float
) -> RateLimitError | BudgetExceededError:
    """The same errors, with the same wording, as the in-memory limiter."""
    kind = verdict[0]
    if kind == "budget_spent":
        return BudgetExceededError(
            f"API key {key.name!r} has spent ${float(verdict[1]):.6f} of its "
            f"${key.budget_usd:g} budget"
        )
    if kind == "budget_exceeded":
        spent, reserved = float(verdict[1]), float(verdict[2])
        return BudgetExceededError(
            f"API key {key.name!r}: this request (estimated ${cost_usd:.6f}) would exceed the "
            f"${key.budget_usd:g} budget (spent ${spent:.6f}, in flight ${reserved:.6f})",
            retry_after=1.0 if reserved > 0 else None,
        )
    if kind == "rpm":
        return RateLimitError(
            f"API key {key.name!r} is limited to {key.rpm} requests per minute",
            retry_after=max(0.0, float(verdict[1])),
        )
    if kind == "tpm_too_large":
        return RateLimitError(
            f"this request needs about {tokens} tokens; API key {key.name!r} is limited to "
            f"{key.tpm} tokens per minute",
            code="request_too_large",
        )
    return RateLimitError(
        f"API key {key.name!r} is limited to {key.tpm} tokens per minute "
        f"({int(float(verdict[1]))} used in the last minute)",
        retry_after=max(0.0, float(verdict[2])),
    )
