"""Every model behind its failover policy: the registry hands out `ResilientProvider`s.

`Registry.provider(name)` wraps each backend (see `models.registry.WRAPPER`) so that a direct
request, an `auto` request, a batch item, a task and a pipeline step all get the same retries
with backoff (Retry-After honoured), fallback along `failover.fallbacks` (else the same tier,
then higher), circuit breaker and total deadline as a cascade rung: one `FailoverCaller` per
registry does all of it, so cooldowns are shared by every path.

The policy lives here, in routing/, and not in models/: it decides *which* model answers, and
providers never import routing; the registry names this module by import path, as it names its
backends.

Hops: a caller that keeps a ledger opens a `failover_scope`; every retry, fallback and skipped
model of the calls made inside it is added to the scope's `HopLog`. An answer on the first try
adds nothing, so the happy path writes no extra rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from smallfirst.routing.fallback import AnyRequest, Deadline, FailoverCaller
from smallfirst.routing.hops import HopLog
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Generation

if TYPE_CHECKING:
    from smallfirst.models.base import Provider
    from smallfirst.models.registry import Registry


@dataclass(slots=True)
class FailoverScope:
    """Where the calls of one request report their hops, and what they may fall back to."""

    log: HopLog
    allow: Callable[[str], bool] | None = None
    """May this fallback be tried (e.g. it fits the request's budget)? None: any may."""
    on_model: Callable[[str], None] | None = None
    """Told the model that answered, when it is not the one asked for (before its answer)."""


_SCOPE: ContextVar[FailoverScope | None] = ContextVar("smallfirst_failover_scope", default=None)


@contextmanager
def failover_scope(
    log: HopLog,
    allow: Callable[[str], bool] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> Iterator[FailoverScope]:
    """Collect the hops of the provider calls made (or streams opened) inside the block."""
    scope = FailoverScope(log, allow, on_model)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> FailoverScope | None:
    """The scope a caller further up opened, if any (nested calls report into it)."""
    return _SCOPE.get()


class Resilience:
    """The registry's provider wrapper: one failover caller (and so one breaker) for all."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.caller = FailoverCaller(registry)

    def wrap(self, name: str, provider: Provider) -> Provider:
        return ResilientProvider(name, provider, self)


def failover_caller(registry: Registry) -> FailoverCaller:
    """The registry's shared caller (cascades use it too, so a cooldown holds everywhere)."""
    return registry.wrapper.caller  # type: ignore[attr-defined]


def use_caller(registry: Registry, caller: FailoverCaller) -> None:
    """Replace the registry's caller (e.g. one whose breaker is shared through Redis)."""
    registry.wrapper.caller = caller  # type: ignore[attr-defined]


class ResilientProvider:
    """A `Provider` whose calls go through the failover policy of its registry.

    Anything else (a backend's own attributes such as `load` or `upstream_model`) is the
    wrapped provider's; `inner` is the backend itself."""

    def __init__(self, name: str, inner: Provider, resilience: Resilience) -> None:
        self.name = name
        self.inner = inner
        self._resilience = resilience

    def __getattr__(self, attr: str) -> Any:
        inner = self.__dict__.get("inner")  # not yet set while unpickling: no recursion
        if inner is None:
            raise AttributeError(attr)
        return getattr(inner, attr)

    async def chat(self, request: ChatRequest) -> Generation:
        return await self._generate(request)

    async def complete(self, request: CompletionRequest) -> Generation:
        return await self._generate(request)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        return self._stream(request, _SCOPE.get())

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self._stream(request, _SCOPE.get())

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _generate(self, request: AnyRequest) -> Generation:
        caller = self._resilience.caller
        scope = _SCOPE.get()
        log = scope.log if scope is not None else HopLog()
        chain = caller.chain(self.name)
        deadline = Deadline.after(caller.config.deadline_s)
        allow = scope.allow if scope is not None else None
        name, generation = await caller.answer(request, chain, log, deadline, allow)
        if name != chain[0] and scope is not None and scope.on_model is not None:
            scope.on_model(name)
        if generation.model != name:  # callers price the answer by the model it names
            generation = replace(generation, model=name)
        return generation

    async def _stream(
        self, request: AnyRequest, scope: FailoverScope | None
    ) -> AsyncIterator[Delta]:
        """The scope is the one active when the stream was asked for: a server iterates the
        stream later, after its handler (and the scope's block) has returned."""
        caller = self._resilience.caller
        log = scope.log if scope is not None else HopLog()
        chain = caller.chain(self.name)

        def answered_by(name: str) -> None:
            if name != chain[0] and scope is not None and scope.on_model is not None:
                scope.on_model(name)

        deadline = Deadline.after(caller.config.deadline_s)
        allow = scope.allow if scope is not None else None
        async for delta in caller.stream(request, chain, log, deadline, allow, answered_by):
            yield delta
