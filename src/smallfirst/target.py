"""What a request's `model` names, resolved once: a model, a router or a cascade.

`Targets.resolve(name)` is the one place a name gets its meaning; the gateway, batch jobs,
tasks, pipelines, evaluation, `smallfirst ask` and `smallfirst.Client` all start there. A
`Target` then answers a request in two steps that callers may separate:

- `route(request)`: which model goes first and why (the gateway reserves that model's budget
  and may forward an OpenAI-compatible upstream's bytes as they are);
- `generate(request)` / `stream(request)`: the answer, plus every hop (retries, fallbacks,
  rungs, checks) that led to it.

Resilience is not here: every model the registry hands out is already behind its failover
policy (routing/resilience.py), so a model, a router's choice and a cascade rung all retry and
fall back the same way. Sync twins (`generate_sync`, `stream_sync`) serve library users.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from smallfirst.blocking import iterate_blocking, run_blocking
from smallfirst.errors import ConfigError, InvalidRequestError, ModelNotFoundError
from smallfirst.models.registry import ModelEntry, Registry
from smallfirst.routing.base import DefaultRouter, RouteDecision, Router, resolve_router
from smallfirst.routing.cascade import CASCADE_PREFIX, Cascade, Cascades, replay
from smallfirst.routing.hops import Hop, HopLog
from smallfirst.routing.requirements import (
    lacking,
    needs_of,
    no_model_serves,
    refuse,
    why_unfit,
)
from smallfirst.routing.resilience import current_scope, failover_scope
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Generation, Message, Usage

if TYPE_CHECKING:
    from smallfirst.learning.gateway import GatewayLearning
    from smallfirst.routing.fallback import FailoverCaller

AnyRequest = ChatRequest | CompletionRequest
TargetKind = Literal["model", "router", "cascade"]


@dataclass(slots=True)
class Route:
    """The model a request goes to, and the router's decision when one chose it."""

    model: ModelEntry
    decision: RouteDecision | None = None


@dataclass(slots=True)
class Answer:
    """A finished request: the answer, the model that gave it, and how it got there."""

    generation: Generation
    route: Route
    """As settled: the model that answered (after any fallback or escalation)."""
    hops: list[Hop]
    """Retries, fallbacks, rungs and checks, in order; empty for a first-try answer."""
    cost_usd: float
    """Everything the request spent: the answer, and for a cascade every rung and check."""
    request_id: str
    verified: bool = True
    """False when a cascade returned an answer that failed its checks (no rung passed)."""

    @property
    def model(self) -> str:
        return self.route.model.name

    @property
    def text(self) -> str:
        return self.generation.text

    @property
    def usage(self) -> Usage:
        return self.generation.usage

    @property
    def escalations(self) -> int:
        return sum(1 for hop in self.hops if hop.kind == "escalate")


OnModel = Callable[[str], None]
Allow = Callable[[str], bool]


class Target(ABC):
    """Something a request can name. Subclasses: `ModelTarget`, `RouterTarget`,
    `CascadeTarget`."""

    kind: ClassVar[TargetKind]

    def __init__(self, name: str, registry: Registry) -> None:
        self.name = name
        """The name as the request spelled it (a model, `default`, `auto`, `cascade-x`)."""
        self.registry = registry

    @abstractmethod
    def route(self, request: AnyRequest) -> Route:
        """The model that goes first, decided on the request (no model is called)."""

    async def aroute(self, request: AnyRequest) -> Route:
        """`route`, kept off the event loop when deciding costs CPU (embedding a prompt)."""
        return self.route(request)

    @abstractmethod
    async def generate(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> Answer:
        """The answer. `route`: reuse a decision already taken; `log`: where hops go (kept
        when this raises); `allow`: may a fallback model be tried (e.g. it fits the budget);
        `on_model`: told when a fallback model is about to answer instead."""

    @abstractmethod
    def stream(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> AsyncIterator[Delta]:
        """The answer as deltas; the last carries `finish_reason` and usage. A fallback is
        tried only before the first byte."""

    def generate_sync(self, request: AnyRequest, **options: Any) -> Answer:
        return run_blocking(self.generate(request, **options))

    def stream_sync(self, request: AnyRequest, **options: Any) -> Iterator[Delta]:
        return iterate_blocking(self.stream(request, **options))


class _OneModel(Target):
    """A target whose answer comes from one model (after its failover policy)."""

    async def generate(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> Answer:
        route = route or await self.aroute(request)
        log, allow, on_model = _in_scope(log, allow, on_model)
        provider = self.registry.provider(route.model.name)
        with failover_scope(log, allow, on_model):
            if isinstance(request, ChatRequest):
                generation = await provider.chat(request)
            else:
                generation = await provider.complete(request)
        answered = self._answered_by(generation, route)
        cost = answered.model.price.cost(generation.usage)
        return Answer(generation, answered, log.hops, cost, log.request_id)

    async def stream(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> AsyncIterator[Delta]:
        route = route or await self.aroute(request)
        log, allow, on_model = _in_scope(log, allow, on_model)
        provider = self.registry.provider(route.model.name)
        with failover_scope(log, allow, on_model):  # the stream keeps this scope
            if isinstance(request, ChatRequest):
                deltas = provider.stream_chat(request)
            else:
                deltas = provider.stream_complete(request)
        async for delta in deltas:
            yield delta

    def _answered_by(self, generation: Generation, route: Route) -> Route:
        """The failover policy names the model that answered on the generation."""
        if generation.model == route.model.name or generation.model not in self.registry.entries:
            return route
        return Route(self.registry.get(generation.model), route.decision)


def _in_scope(
    log: HopLog | None, allow: Allow | None, on_model: OnModel | None
) -> tuple[HopLog, Allow | None, OnModel | None]:
    """Without a log of its own, a call reports into the failover scope a caller further up
    opened (a pipeline, a batch job), with that scope's rules."""
    outer = current_scope()
    if log is not None or outer is None:
        return log or HopLog(), allow, on_model
    return outer.log, allow or outer.allow, on_model or outer.on_model


class ModelTarget(_OneModel):
    kind = "model"

    def __init__(self, name: str, entry: ModelEntry, registry: Registry) -> None:
        super().__init__(name, registry)
        self.entry = entry
        """The configured model (`name` may be the alias `default`)."""

    def route(self, request: AnyRequest) -> Route:
        """This model, if it can honour every field of the request (else a 400 naming it)."""
        missing = lacking(self.entry, needs_of(request))
        if missing:
            refuse(self.entry, missing, self.registry.entries.values())
        return Route(self.entry)


class RouterTarget(_OneModel):
    kind = "router"

    def __init__(self, name: str, router: Router, registry: Registry) -> None:
        super().__init__(name, registry)
        self.router = router

    def route(self, request: AnyRequest) -> Route:
        """The router's choice; when that model lacks a capability the request needs or its
        context is too small, the next model that can serve it (cheapest above the choice
        first), with the reason saying what was passed over."""
        decision = self.router.decide(messages_of(request))
        chosen = self.registry.get(decision.model)
        needs = needs_of(request)
        why = why_unfit(chosen, request, needs)
        if why is None:
            return Route(chosen, decision)
        order = self.registry.by_tier()
        at = order.index(chosen)
        passed = [why]
        for entry in [*order[at + 1 :], *reversed(order[:at])]:
            if decision.details.get("local_only") and not entry.capabilities.local:
                passed.append(f"{entry.name} is not local")
                continue
            why = why_unfit(entry, request, needs)
            if why is None:
                reason = f"{decision.reason}; {'; '.join(passed)}: {entry.name} instead"
                return Route(entry, replace(decision, model=entry.name, reason=reason))
            passed.append(why)
        no_model_serves(needs, passed)

    async def aroute(self, request: AnyRequest) -> Route:
        if isinstance(self.router, DefaultRouter):
            return self.route(request)
        return await asyncio.to_thread(self.route, request)


class CascadeTarget(Target):
    """The escalation ladder; a cascade checks whole answers, so its stream replays the
    accepted one."""

    kind = "cascade"

    def __init__(self, name: str, cascade: Cascade, registry: Registry) -> None:
        super().__init__(name, registry)
        self.cascade = cascade

    def route(self, request: AnyRequest) -> Route:
        first = self.registry.get(self.cascade.rungs[0])
        decision = RouteDecision(first.name, CASCADE_PREFIX + self.cascade.name, "cascade start")
        return Route(first, decision)

    async def generate(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> Answer:
        """`allow` and `on_model` do not apply: the ladder picks its own rungs and fallbacks,
        and the caller reserves the whole cascade's worst case up front."""
        log = log or HopLog()
        result = await self.cascade.run(request, log=log)
        final = self.registry.get(result.model)
        kept = "kept" if result.verified else "unverified"
        reason = f"{kept} on {final.tier} after {result.escalations} escalation(s)"
        decision = RouteDecision(final.name, CASCADE_PREFIX + self.cascade.name, reason)
        return Answer(
            result.generation,
            Route(final, decision),
            result.hops,
            result.cost_usd,
            result.request_id,
            verified=result.verified,
        )

    async def stream(
        self,
        request: AnyRequest,
        *,
        route: Route | None = None,
        log: HopLog | None = None,
        allow: Allow | None = None,
        on_model: OnModel | None = None,
    ) -> AsyncIterator[Delta]:
        answer = await self.generate(request, log=log)
        async for delta in replay(answer.generation):
            yield delta


class Targets:
    """Resolves names to targets and keeps them (routers load their files once; cascades
    share one failover caller: `caller`, else the registry's)."""

    def __init__(
        self,
        registry: Registry,
        caller: FailoverCaller | None = None,
        learning: GatewayLearning | None = None,
    ) -> None:
        self.registry = registry
        self.cascades = Cascades(registry, caller, resolve=self.router)
        """Built here, so a cascade's `router:` resolves by `router` below."""
        self.learning = learning
        """With `learn:` configured, `auto` serves each task by its learned policy."""
        self._resolved: dict[str, Target] = {}

    def resolve(self, name: str) -> Target:
        """The target `name` means; unknown names raise `ModelNotFoundError` listing every
        name that would work (and are not kept: they could be anything)."""
        found = self._resolved.get(name)
        if found is None:
            found = self._resolve(name)
            self._resolved[name] = found
        return found

    def router(self, name: str) -> Target:
        """The router `name` means where only a router will do (a cascade's `router:`): a
        model or cascade name is refused saying what it is (a cascade unbuilt: it could name
        the asking cascade back), an unknown name is `resolve`'s 404. `auto` is the configured
        router, not the learned policy: that serves requests, it does not pick a rung."""
        if self.cascades.cascade_name(name) is not None:
            raise ConfigError(f"{name!r} is a cascade, not a router")
        target = self._resolve(name, learned=False)
        if target.kind != "router":
            raise ConfigError(f"{name!r} is a {target.kind}, not a router")
        return target

    def _resolve(self, name: str, learned: bool = True) -> Target:
        registry = self.registry
        if name in registry.entries or name == "default":
            return ModelTarget(name, registry.get(name), registry)
        if self.cascades.cascade_name(name) is not None:
            return CascadeTarget(name, self.cascades.get(name), registry)
        if name == "auto" and learned and self.learning is not None:
            from smallfirst.learning.target import LearnedTarget

            return LearnedTarget(name, registry, self.learning)
        router = resolve_router(name, registry)
        if router is not None:
            return RouterTarget(name, router, registry)
        raise ModelNotFoundError(
            f"The model {name!r} does not exist. Configured models: "
            f"{', '.join(registry.names())}; routers: {', '.join(self.router_names())}, "
            f"router-<kind>-<threshold>; cascades: {', '.join(self.cascade_names()) or 'none'}",
            param="model",
        )

    def router_names(self) -> list[str]:
        return ["auto", *(name for name in self.registry.config.routers if name != "auto")]

    def cascade_names(self) -> list[str]:
        return [CASCADE_PREFIX + name for name in self.registry.config.cascades]


def resolve(name: str, registry: Registry) -> Target:
    """One name, resolved without keeping a `Targets` (scripts, one-off calls)."""
    return Targets(registry).resolve(name)


def one_model_route(name: str, registry: Registry, request: AnyRequest, purpose: str) -> Route:
    """The model a model or router name picks for `request`, for callers that build the
    prompt for that model themselves (tasks, grounded answers); a cascade, which needs whole
    answers to climb, is refused with a 400 saying what `purpose` can run on."""
    target = resolve(name, registry)
    if isinstance(target, CascadeTarget):
        raise InvalidRequestError(
            f"{name!r} is a cascade; {purpose} runs on a model or a router", param="model"
        )
    return target.route(request)


def messages_of(request: AnyRequest) -> list[Message]:
    """What a router reads: the chat, or a completion's prompt as one user turn."""
    if isinstance(request, ChatRequest):
        return request.messages
    return [Message("user", request.prompt)]
