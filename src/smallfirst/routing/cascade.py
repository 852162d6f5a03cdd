"""The escalation ladder: answer on a cheap rung, check the answer, climb only when it fails.

Routing guesses before the answer exists; a cascade looks at the answer. With a router
configured the two combine: the router picks the starting rung (skipping rungs it predicts
will fail) and the checks decide from there. Every step is a hop in the result.

Two ways up, two ways sideways: a failed check or a student's deferral climbs to the next rung
(the model was fine, the answer was not good enough); a failure (error, timeout, open circuit)
first tries the rung's fallbacks (`failover.fallbacks`, else same-tier models off the ladder),
since another model of the same size may well answer.

A cascade's `router:` is a name like a request's `model`, so it resolves through `Targets`
(smallfirst/target.py), which builds cascades: the resolver is passed in (`resolve`), since
that module imports this one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from smallfirst.config import CascadeConfig
from smallfirst.errors import (
    ConfigError,
    ModelNotFoundError,
    PermissionDeniedError,
    SmallfirstError,
)
from smallfirst.models.registry import Registry
from smallfirst.routing.base import RouteDecision
from smallfirst.routing.checks import Check, CheckContext, build_check, passes, resolve_model
from smallfirst.routing.fallback import (
    AnyRequest,
    Deadline,
    FailoverCaller,
    exhausted_error,
    is_deferral,
    is_fatal,
)
from smallfirst.routing.hops import CascadeResult, HopLog
from smallfirst.routing.requirements import Need, needs_of, no_model_serves, why_unfit
from smallfirst.routing.resilience import failover_caller
from smallfirst.types import TIERS, Delta, Generation
from smallfirst.wire.tool_calls import deltas_of

if TYPE_CHECKING:
    from smallfirst.target import Target

CASCADE_PREFIX = "cascade-"

ResolveRouter = Callable[[str], "Target"]
"""A router name to its target, as for a request's `model` (`Targets.router`); raises for a
name of another kind."""


class Cascade:
    def __init__(
        self,
        name: str,
        config: CascadeConfig,
        registry: Registry,
        caller: FailoverCaller | None = None,
        router: Target | None = None,
        resolve: ResolveRouter | None = None,
    ) -> None:
        """`router`: a router target that picks the starting rung; else `config.router`,
        resolved by `resolve`."""
        self.name = name
        self.config = config
        self.registry = registry
        self.caller = caller or failover_caller(registry)
        self.rungs = _dedupe(resolve_model(registry, ref) for ref in config.rungs)
        self.checks: list[Check] = [build_check(c, registry) for c in config.checks]
        self.router = router
        if router is None and config.router:
            self.router = self._router(config.router, resolve)

    def _router(self, ref: str, resolve: ResolveRouter | None) -> Target:
        """`router:` resolved like a request's `model`: an unknown name is the resolver's 404
        listing every name; another kind of name says what it is, under this cascade's name."""
        if resolve is None:
            raise ConfigError(
                f"cascade {self.name!r} has router {ref!r}: build it through "
                "smallfirst.target.Targets, which resolves router names"
            )
        try:
            return resolve(ref)
        except ConfigError as exc:
            raise ConfigError(f"cascade {self.name!r}: router: {exc.message}") from exc

    def candidates(self, rung: int) -> list[str]:
        """The rung's model, then its fallbacks off the ladder: `failover.fallbacks` for it
        when configured (`[]`: none), else the models of its tier. Other rungs are never a
        fallback: they are climbed in order."""
        model = self.rungs[rung]
        spares = self.caller.config.fallbacks.get(model)
        if spares is None:
            tier = self.registry.get(model).tier
            spares = [e.name for e in self.registry.by_tier() if e.tier == tier]
        return [model, *[m for m in _dedupe(spares) if m not in self.rungs]]

    async def run(
        self, request: AnyRequest, *, request_id: str | None = None, log: HopLog | None = None
    ) -> CascadeResult:
        """The accepted answer and its hops. Pass `log` to keep the hops when it raises."""
        log = log or HopLog(request_id)
        seconds = self.config.deadline_s or self.caller.config.deadline_s
        deadline = Deadline.after(seconds)
        if any(c.name == "logprob" for c in self.checks):
            request = replace(request, params=replace(request.params, logprobs=True))
        start, local_only = self._start_rung(request, log)
        needs = needs_of(request)
        passed = [
            why
            for m in self.rungs[start:]
            if (why := why_unfit(self.registry.get(m), request, needs)) is not None
        ]
        if len(passed) == len(self.rungs[start:]):
            no_model_serves(needs, passed)
        best: tuple[Generation, int] | None = None
        failures: list[tuple[str, SmallfirstError]] = []
        for rung in range(start, len(self.rungs)):
            if deadline.expired():
                failures.append((self.rungs[rung], self.caller.deadline_error(deadline)))
                break
            candidates = self.candidates(rung)
            if local_only:  # personal data: never climbs to (or falls back on) a cloud model
                candidates = [m for m in candidates if self.registry.get(m).capabilities.local]
                if not candidates:
                    continue
            candidates = self._able(candidates, request, needs, log, rung)
            if not candidates:
                continue
            try:
                generation = await self.caller.generate(
                    request, candidates, log, deadline, rung, failures
                )
            except SmallfirstError as exc:
                if is_fatal(exc):
                    raise
                why = "deferred" if is_deferral(exc) else "no answer"
                self._escalate(log, rung, f"{why} ({exc.message})")
                continue
            best = (generation, rung)
            if await self._accepted(request, generation, rung, log, deadline, local_only):
                return self._result(log, generation, rung, verified=True)
            if rung == len(self.rungs) - 1:
                return self._result(log, generation, rung, verified=False)
            self._escalate(log, rung, "the answer failed its checks")
        return self._give_up(log, best, failures)

    def _able(
        self, candidates: list[str], request: AnyRequest, needs: list[Need], log: HopLog, rung: int
    ) -> list[str]:
        """The candidates that can honour every field of the request and fit its prompt; a
        rung's own model passed over is a hop saying why."""
        able = []
        for name in candidates:
            why = why_unfit(self.registry.get(name), request, needs)
            if why is None:
                able.append(name)
            elif name == self.rungs[rung]:
                log.add("failure", model=name, rung=rung, outcome="skipped", detail=why)
        return able

    def _start_rung(self, request: AnyRequest, log: HopLog) -> tuple[int, bool]:
        """The rung to start on, and whether only `local` models may answer (personal data)."""
        if self.router is None:
            return 0, False
        try:
            route = self.router.route(request)  # held to capabilities and context, as anywhere
            start = self._rung_for(route.model.name)
        except PermissionDeniedError:  # personal data and no local model: refused, not routed
            raise
        except Exception as exc:  # an advisory router must never lose the request
            log.add("route", outcome="error", detail=f"router failed ({exc}); first rung")
            return 0, False
        decision = route.decision or RouteDecision(route.model.name, self.router.name, "chosen")
        skipped = ", ".join(self.rungs[:start]) or "none"
        log.add(
            "route",
            model=self.rungs[start],
            tier=self.registry.get(self.rungs[start]).tier,
            rung=start,
            outcome="skip" if start else "start",
            detail=f"{decision.router}: {decision.reason}; skipped rungs: {skipped}",
            score=decision.score,
        )
        return start, bool(decision.details.get("local_only"))

    def _rung_for(self, model: str) -> int:
        """The chosen model's rung, else the first rung of at least its tier."""
        if model in self.rungs:
            return self.rungs.index(model)
        rank = TIERS.index(self.registry.get(model).tier)
        for index, name in enumerate(self.rungs):
            if TIERS.index(self.registry.get(name).tier) >= rank:
                return index
        return len(self.rungs) - 1

    async def _accepted(
        self,
        request: AnyRequest,
        generation: Generation,
        rung: int,
        log: HopLog,
        deadline: Deadline,
        local_only: bool = False,
    ) -> bool:
        """Run the checks in order (cheap ones first, as configured); stop at the first miss."""
        last = rung == len(self.rungs) - 1
        if last and not self.config.check_last_rung:
            return True
        ctx = CheckContext(
            request, generation, generation.model, self.caller, log, deadline, rung, local_only
        )
        for check in self.checks:
            outcome = await check.evaluate(ctx)
            ok = passes(check, outcome)
            log.add_usage(
                "check",
                outcome.usage,
                outcome.cost_usd,
                model=generation.model,
                tier=self.registry.get(generation.model).tier,
                rung=rung,
                check=check.name,
                outcome="passed" if ok else "failed",
                detail=outcome.detail,
                score=outcome.score,
                threshold=check.threshold,
            )
            if not ok:
                return False
        return True

    def _escalate(self, log: HopLog, rung: int, why: str) -> None:
        if rung + 1 >= len(self.rungs):
            return
        log.add(
            "escalate",
            model=self.rungs[rung + 1],
            tier=self.registry.get(self.rungs[rung + 1]).tier,
            rung=rung + 1,
            outcome="escalated",
            detail=f"rung {rung} ({self.rungs[rung]}): {why}",
        )

    def _result(
        self, log: HopLog, generation: Generation, rung: int, verified: bool
    ) -> CascadeResult:
        log.add(
            "accept",
            model=generation.model,
            tier=self.registry.get(generation.model).tier,
            rung=rung,
            outcome="kept" if verified else "unverified",
            detail=f"answer from rung {rung} ({generation.model})",
        )
        return CascadeResult(generation, log.request_id, self.name, log.hops, verified)

    def _give_up(
        self,
        log: HopLog,
        best: tuple[Generation, int] | None,
        failures: list[tuple[str, SmallfirstError]],
    ) -> CascadeResult:
        """No rung both answered and passed: the best answer obtained, else one error naming
        every model of every rung that was tried and why each gave no answer."""
        if best is not None:
            result = self._result(log, *best, verified=False)
            result.hops[-1].detail += ": no higher rung answered; returned unverified"
            return result
        raise exhausted_error(log.request_id, failures)

    async def stream(
        self, request: AnyRequest, *, request_id: str | None = None, log: HopLog | None = None
    ) -> tuple[CascadeResult, AsyncIterator[Delta]]:
        """A cascade checks whole answers, so nothing is sent before the accepted one exists;
        returns the result and an iterator that replays it as deltas."""
        result = await self.run(request, request_id=request_id, log=log)
        return result, replay(result.generation)


async def replay(generation: Generation) -> AsyncIterator[Delta]:
    """A finished answer (a cascade's accepted one) as a stream, tool calls included."""
    calls = deltas_of(generation.tool_calls or [])
    if generation.text or calls or generation.refusal:
        yield Delta(
            text=generation.text, tool_calls=calls or None, refusal=generation.refusal or ""
        )
    yield Delta(finish_reason=generation.finish_reason, usage=generation.usage)


def _dedupe(names: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


class Cascades:
    """The configured cascades by name, sharing one failover caller (so cooldowns are shared)."""

    def __init__(
        self,
        registry: Registry,
        caller: FailoverCaller | None = None,
        resolve: ResolveRouter | None = None,
    ) -> None:
        """`resolve`: for the cascades' `router:` names (`Targets` passes `Targets.router`)."""
        self.registry = registry
        self.caller = caller or failover_caller(registry)
        self.resolve = resolve
        self._built: dict[str, Cascade] = {}

    def cascade_name(self, model: str) -> str | None:
        """`cascade-<name>` or a bare configured cascade name -> its name; else None."""
        if model in self.registry.entries:
            return None
        name = model.removeprefix(CASCADE_PREFIX)
        return name if name in self.registry.config.cascades else None

    def get(self, model: str) -> Cascade:
        name = self.cascade_name(model)
        if name is None:
            known = ", ".join(CASCADE_PREFIX + n for n in self.registry.config.cascades) or "none"
            raise ModelNotFoundError(
                f"The cascade {model!r} does not exist. Configured cascades: {known}",
                param="model",
            )
        if name not in self._built:
            config = self.registry.config.cascades[name]
            self._built[name] = Cascade(
                name, config, self.registry, self.caller, resolve=self.resolve
            )
        return self._built[name]
