"""The gateway's shared state: registry, ledger, keys, limiter, metrics, routers.

Nothing here does I/O at construction; `start()` (the app's lifespan) opens the ledger,
loads keys and past spend, and optionally loads local models in the background.
"""

from __future__ import annotations

import asyncio
import logging
import os

from starlette.datastructures import Headers

from smallfirst.config import Config
from smallfirst.learning.gateway import GatewayLearning
from smallfirst.ledger import Ledger, LedgerEntry
from smallfirst.ledger.retention import keep_pruning
from smallfirst.models.registry import Registry
from smallfirst.routing.fallback import FailoverCaller
from smallfirst.routing.redis_circuit import RedisCircuitBreaker
from smallfirst.routing.resilience import use_caller
from smallfirst.server.auth import Authenticator
from smallfirst.server.call import Call
from smallfirst.server.limits import InMemoryLimiter, Limiter
from smallfirst.server.metrics import GatewayMetrics
from smallfirst.server.redact import redact
from smallfirst.server.upstream import UpstreamPool
from smallfirst.target import AnyRequest, Route, Target, Targets

log = logging.getLogger("smallfirst.server")
ADMIN_TOKEN_ENV = "SMALLFIRST_ADMIN_TOKEN"


class Gateway:
    def __init__(
        self,
        config: Config | None = None,
        *,
        registry: Registry | None = None,
        ledger_url: str | None = None,
        auth: bool | None = None,
        limiter: Limiter | None = None,
        preload: bool = False,
    ) -> None:
        self.registry = registry or Registry(config)
        self.config = self.registry.config
        server = self.config.server
        self.auth_required = server.auth if auth is None else auth
        self.ledger_url = ledger_url or server.ledger_url
        self.max_body_bytes = server.max_body_bytes
        self.log_prompts = server.log_prompts
        self.redact = server.redact
        self.limiter: Limiter = limiter or _limiter(server.redis_url)
        self.metrics = GatewayMetrics()
        self.upstreams = UpstreamPool()
        self.baseline = self.registry.get(self.registry.baseline_model)
        self.preload = preload
        self.ledger: Ledger | None = None
        self.auth: Authenticator | None = None
        self.admin_token: str | None = None
        """From $SMALLFIRST_ADMIN_TOKEN at start: sees every key's rows on the dashboard."""
        self.learning: GatewayLearning | None = None
        """`learn:` configured: tasks, shadow calls and learned policies (smallfirst/learning)."""
        if self.config.learn is not None:
            self.learning = GatewayLearning(self, self.config.learn)
        self.targets = Targets(
            self.registry, _failover(self.registry, server.redis_url), self.learning
        )
        self.cascades = self.targets.cascades
        """`model: "cascade-<name>"` requests; one failover caller, so cooldowns are shared."""
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
        self.ledger = await asyncio.to_thread(Ledger, self.ledger_url)
        self.metrics.watch_ledger(self.ledger.writer)
        self.auth = Authenticator(self.ledger.keys, self.auth_required)
        await self.auth.refresh()
        await self.limiter.load_spend(await asyncio.to_thread(self.ledger.store.spend_by_key))
        self._spawn(keep_pruning(self.ledger.store, self.config.ledger.retention))
        if self.learning is not None:
            await self.learning.start()
        if self.preload:
            for entry in self.registry.entries.values():
                if entry.capabilities.embedded:
                    self._spawn(self._load(entry.name))

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.learning is not None:
            await self.learning.stop()
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
        await self.upstreams.aclose()
        await self.limiter.aclose()
        await self.registry.aclose()
        breaker = self.cascades.caller.breaker
        if isinstance(breaker, RedisCircuitBreaker):
            await breaker.aclose()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _load(self, name: str) -> None:
        """Warm a local model so the first request does not pay for loading the weights."""
        try:
            await self.registry.provider(name).load()  # type: ignore[attr-defined]
        except Exception as exc:  # reported on the first request that needs the model
            log.warning("could not preload %s: %s", name, exc)

    def begin(self, endpoint: str) -> Call:
        return Call(self, endpoint)

    def record(self, entry: LedgerEntry) -> None:
        """Called once per finished request (and by cascades, once per hop); the row is queued
        before anything else that could fail."""
        if self.redact:
            entry.prompt = entry.prompt and redact(entry.prompt)
            entry.response = entry.response and redact(entry.response)
        if self.ledger is not None:
            self.ledger.record(entry)
        if entry.kind == "request":
            self.metrics.observe(entry)

    async def authenticate(self, call: Call, headers: Headers) -> None:
        if self.auth is not None:
            call.authenticated(await self.auth.authenticate(headers))

    def resolve(self, call: Call, name: str) -> Target:
        """What a request's `model` names (smallfirst/target.py); unknown names are a 404,
        whose ledger row still says what was asked for."""
        call.entry.requested_model = name
        return self.targets.resolve(name)

    async def route(self, call: Call, target: Target, request: AnyRequest) -> Route:
        """Decide the first model on the request and put the decision on the call."""
        route = await target.aroute(request)
        call.routed(route.model, route.decision)
        return route

    def router_names(self) -> list[str]:
        return self.targets.router_names()


def _limiter(redis_url: str | None) -> Limiter:
    """In memory for one replica; in Redis (`server.redis_url`) when several share the limits."""
    if redis_url is None:
        return InMemoryLimiter()
    from smallfirst.server.redis_limits import RedisLimiter

    return RedisLimiter.from_url(redis_url)


def _failover(registry: Registry, redis_url: str | None) -> FailoverCaller | None:
    """Cooldowns shared through Redis too, so a failing model is avoided by every replica."""
    if redis_url is None:
        return None
    from redis.asyncio import Redis

    failover = registry.config.failover
    breaker = RedisCircuitBreaker(
        Redis.from_url(redis_url, socket_timeout=5.0),
        failover.failure_threshold,
        failover.cooldown_s,
    )
    caller = FailoverCaller(registry, breaker=breaker)
    use_caller(registry, caller)  # every path's providers share these cooldowns too
    return caller
