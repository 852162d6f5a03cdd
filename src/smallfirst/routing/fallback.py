"""Calls that survive failures: retries with backoff, fallback models, cooldowns, a deadline.

A failed attempt (429, 5xx, reset, malformed reply, timeout) is retried on the same model with
exponential backoff, honouring a 429's Retry-After; when the model's retries are spent, or its
circuit is open, the next candidate answers: explicit `failover.fallbacks`, else the other models
of the same tier by price, then the higher tiers. A bad request (400) fails at once: every model
would refuse it. A student's deferral is not a failure either: it is neither retried nor sent to
another candidate (a cascade climbs to its next rung instead). Streams fall back only until their
first byte has gone out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from smallfirst.config import FailoverConfig
from smallfirst.errors import (
    ContextLengthError,
    DeferredError,
    InvalidRequestError,
    RateLimitError,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeoutError,
)
from smallfirst.models.registry import Registry
from smallfirst.routing.circuit import CircuitBreaker, InMemoryCircuitBreaker
from smallfirst.routing.hops import CascadeResult, HopLog
from smallfirst.routing.requirements import unfit_for
from smallfirst.types import TIERS, ChatRequest, CompletionRequest, Delta, Generation, Usage

AnyRequest = ChatRequest | CompletionRequest
OVER = "skipped: its worst case exceeds what the request was admitted for"
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(slots=True)
class Deadline:
    """The moment (monotonic clock) a request must be answered by."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


def is_retryable(exc: SmallfirstError) -> bool:
    """Transient upstream trouble: worth another attempt on the same model."""
    if isinstance(exc, RateLimitError):
        return True
    if isinstance(exc, UpstreamError):
        status = exc.upstream_status
        return status is None or status >= 500 or status in (408, 429)
    return False


def is_fatal(exc: SmallfirstError) -> bool:
    """The request itself is wrong: no other model would answer it either."""
    return isinstance(exc, InvalidRequestError) and not isinstance(exc, ContextLengthError)


def is_deferral(exc: SmallfirstError) -> bool:
    """A student declined to answer: the request is fine and the model is healthy."""
    return isinstance(exc, DeferredError)


def exhausted_error(
    request_id: str, failures: list[tuple[str, SmallfirstError]], cooling: Sequence[str] = ()
) -> SmallfirstError:
    """One clear error naming every model that was tried and why it failed (its last error,
    with the number of attempts when it was retried). Only deferrals: a 422 deferral.
    `cooling`: the models skipped because their circuit was open."""
    if not failures:
        names = f" ({', '.join(repr(name) for name in cooling)})" if cooling else ""
        return UpstreamError(
            f"request {request_id}: no model could be tried: all{names} are cooling down "
            "after repeated failures"
        )
    if len(failures) == 1 and not is_deferral(failures[0][1]):
        return failures[0][1]  # nothing else was tried: the error as it is, status and all
    summary = _summary(failures)
    error = _exhausted(f"request {request_id}: every candidate model failed: {summary}", failures)
    details = {m: getattr(e, "detail", None) for m, e in failures if getattr(e, "detail", None)}
    if details:  # why, for the ledger and the log only, never the client (see `Call.fail`)
        error.detail = "; ".join(f"{m}: {detail}" for m, detail in details.items())  # type: ignore[attr-defined]
    return error


def _exhausted(message: str, failures: list[tuple[str, SmallfirstError]]) -> SmallfirstError:
    errors = [exc for _, exc in failures]
    if all(isinstance(e, DeferredError) for e in errors):
        last: DeferredError = errors[-1]  # type: ignore[assignment]
        return DeferredError(
            message.replace("every candidate model failed", "every model deferred", 1),
            confidence=last.confidence,
            threshold=last.threshold,
            label=last.label,
        )
    if all(isinstance(e, ContextLengthError) for e in errors):
        return ContextLengthError(message)  # still the client's to fix: a 400
    if all(isinstance(e, RateLimitError) for e in errors):
        waits = [e.retry_after for e in errors if e.retry_after is not None]  # type: ignore[attr-defined]
        return RateLimitError(message, retry_after=min(waits) if waits else None)
    if isinstance(errors[-1], UpstreamTimeoutError):
        return UpstreamTimeoutError(message)
    return UpstreamError(message)


def _summary(failures: list[tuple[str, SmallfirstError]]) -> str:
    """`a: <last error> (3 attempts); b: <error>`, models in the order they were tried."""
    last: dict[str, str] = {}
    attempts: dict[str, int] = {}
    for model, exc in failures:
        last.pop(model, None)  # re-insert: a model tried again later moves to the end
        last[model] = exc.message
        attempts[model] = attempts.get(model, 0) + 1
    return "; ".join(
        f"{model}: {message}" + (f" ({attempts[model]} attempts)" if attempts[model] > 1 else "")
        for model, message in last.items()
    )


class FailoverCaller:
    """Calls a list of candidate models in order, each with retries, under one deadline."""

    def __init__(
        self,
        registry: Registry,
        config: FailoverConfig | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.config = config or registry.config.failover
        self.breaker = breaker or InMemoryCircuitBreaker(
            self.config.failure_threshold, self.config.cooldown_s
        )
        self.sleep = sleep

    def chain(self, model: str) -> list[str]:
        """`model` first, then its fallbacks: configured ones, else same tier, then higher."""
        name = self.registry.get(model).name
        explicit = self.config.fallbacks.get(name)
        if explicit is not None:
            return [name, *[m for m in explicit if m != name]]
        rank = TIERS.index(self.registry.get(name).tier)
        later = [
            e.name
            for e in self.registry.by_tier()
            if e.name != name and TIERS.index(e.tier) >= rank
        ]
        return [name, *later]

    async def call(
        self,
        model: str,
        request: AnyRequest,
        *,
        request_id: str | None = None,
        deadline_s: float | None = None,
    ) -> CascadeResult:
        """One model with retries and fallbacks; the answer plus every hop on the way."""
        log = HopLog(request_id)
        deadline = Deadline.after(deadline_s or self.config.deadline_s)
        generation = await self.generate(request, self.chain(model), log, deadline)
        log.add("accept", model=generation.model, outcome="kept", detail="answered")
        return CascadeResult(generation, log.request_id, None, log.hops, verified=True)

    async def generate(
        self,
        request: AnyRequest,
        candidates: list[str],
        log: HopLog,
        deadline: Deadline,
        rung: int | None = None,
        failures: list[tuple[str, SmallfirstError]] | None = None,
    ) -> Generation:
        """The first candidate's answer that arrives; raises one error if none does.

        Each failed attempt is appended to `failures` as (model, error) when a list is given,
        so a cascade can name every model of every rung when none answered."""

        async def once(name: str) -> Generation:
            return await self._once(request, name, deadline)

        name, generation = await self.run(candidates, once, log, deadline, rung, failures)
        self._note_answer(log, name, generation, rung)
        return generation

    async def answer(
        self,
        request: AnyRequest,
        candidates: list[str],
        log: HopLog,
        deadline: Deadline,
        allow: Callable[[str], bool] | None = None,
    ) -> tuple[str, Generation]:
        """`generate` for a wrapped provider: (model, answer), and hops only when it took more
        than one try (then the answer's hop too, so the ledger says who answered). A fallback
        that cannot honour the request (`why_unfit`) is passed over."""

        async def once(name: str) -> Generation:
            return await self._once(request, name, deadline)

        before = len(log.hops)
        unfit = unfit_for(self.registry, request)
        name, generation = await self.run(candidates, once, log, deadline, allow=allow, unfit=unfit)
        if len(log.hops) > before:
            self._note_answer(log, name, generation, None)
        return name, generation

    async def run(
        self,
        candidates: list[str],
        once: Callable[[str], Awaitable[T]],
        log: HopLog,
        deadline: Deadline,
        rung: int | None = None,
        failures: list[tuple[str, SmallfirstError]] | None = None,
        *,
        first_error: SmallfirstError | None = None,
        allow: Callable[[str], bool] | None = None,
        unfit: Callable[[str], str | None] | None = None,
    ) -> tuple[str, T]:
        """(model, answer) from the first candidate whose `once(model)` succeeds, each tried
        with retries; raises one error naming every failure when none does.

        `first_error`: the first candidate's first attempt already failed so (the gateway's
        fast path makes that attempt itself). `allow`: whether a fallback may be tried at all
        (the gateway's budget check); `unfit`: why a fallback cannot serve the request (it
        lacks a capability the request needs, or its context is too small), None when it
        can. The first candidate always is tried: it was chosen for the request."""
        failures = [] if failures is None else failures
        first = len(failures)
        cooling: list[str] = []
        for position, name in enumerate(candidates):
            if position > 0:
                first_error = None
                why = unfit(name) if unfit is not None else None
                if why is not None:
                    self._note_skip(log, name, rung, f"skipped: {why}")
                    continue
                if allow is not None and not allow(name):
                    self._note_skip(log, name, rung)
                    continue
                self._note_fallback(log, candidates[position - 1], name, rung)
            if first_error is None and not await self.available(name):
                self._note_open(log, name, rung)
                cooling.append(name)
                continue
            try:
                answer = await self._attempts(
                    name, once, log, deadline, rung, failures, first_error
                )
            except _GiveUp:
                break
            except _NextModel:
                continue
            return name, answer
        raise exhausted_error(log.request_id, failures[first:], cooling)

    async def available(self, name: str) -> bool:
        """May `name` be tried now? Known-healthy models cost no breaker call."""
        return self.breaker.closed(name) or await self.breaker.available(name)

    def retrying(self) -> AsyncRetrying:
        """The retry policy (tenacity): up to `retries` more attempts, each after the wait
        its failure asked for (`_retry_wait`: backoff, or a 429's Retry-After)."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=_asked_wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self.sleep,
            reraise=True,
        )

    async def _attempts(
        self,
        name: str,
        once: Callable[[str], Awaitable[T]],
        log: HopLog,
        deadline: Deadline,
        rung: int | None,
        failures: list[tuple[str, SmallfirstError]],
        pending: SmallfirstError | None,
    ) -> T:
        try:
            async for attempt in self.retrying():
                with attempt:
                    number = attempt.retry_state.attempt_number
                    if deadline.expired():
                        failures.append((name, self.deadline_error(deadline)))
                        raise _GiveUp
                    if number > 1 and not await self.available(name):
                        raise _NextModel
                    try:
                        if pending is not None:
                            failed, pending = pending, None
                            raise failed
                        answer = await once(name)
                    except SmallfirstError as exc:
                        failures.append((name, exc))
                        wait = await self._failed(exc, name, log, deadline, rung, number - 1)
                        if wait is None:
                            raise _NextModel from None
                        raise _Retry(wait) from exc
                    if number > 1 or not self.breaker.closed(name):
                        await self.breaker.record_success(name)
                    return answer
        except _Retry:
            pass  # the policy's attempts are spent
        raise _NextModel

    async def _once(self, request: AnyRequest, name: str, deadline: Deadline) -> Generation:
        provider = self.registry.raw_provider(name)
        call = (
            provider.chat(request)
            if isinstance(request, ChatRequest)
            else provider.complete(request)
        )
        try:
            return await asyncio.wait_for(call, timeout=max(deadline.remaining(), 0.001))
        except TimeoutError:
            raise self.deadline_error(deadline) from None

    def deadline_error(self, deadline: Deadline) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(f"the request's deadline of {deadline.seconds:g} s passed")

    async def _failed(
        self,
        exc: SmallfirstError,
        name: str,
        log: HopLog,
        deadline: Deadline,
        rung: int | None,
        attempt: int,
    ) -> float | None:
        """Record the failure; the seconds to wait before retrying, or None to move on."""
        if is_fatal(exc):
            self._note_failure(log, name, exc, rung, "not retried: the request itself is invalid")
            raise exc
        if is_deferral(exc):
            plan = "a deferral is not a failure: no retry, no same-tier fallback"
            self._note_failure(log, name, exc, rung, plan)
            raise exc
        if is_retryable(exc):
            await self.breaker.record_failure(name)
        wait = self._retry_wait(exc, attempt, deadline)
        plan = f"retrying in {wait:.2f} s" if wait is not None else "moving on"
        self._note_failure(log, name, exc, rung, plan)
        return wait

    def _retry_wait(self, exc: SmallfirstError, attempt: int, deadline: Deadline) -> float | None:
        if not is_retryable(exc) or attempt >= self.config.retries:
            return None
        wait = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.config.max_retry_after_s:
                return None
            wait = retry_after
        return wait if wait < deadline.remaining() else None

    # -- hops -----------------------------------------------------------------------------------
    def _tier(self, name: str) -> str:
        return self.registry.get(name).tier

    def _note_answer(
        self, log: HopLog, name: str, generation: Generation, rung: int | None
    ) -> None:
        cost = self.registry.get(name).price.cost(generation.usage)
        log.add_usage(
            "answer",
            generation.usage,
            cost,
            model=name,
            tier=self._tier(name),
            rung=rung,
            outcome="ok",
            detail=f"{generation.usage.output_tokens} tokens, finish {generation.finish_reason}",
            latency_s=generation.latency_s,
        )

    def _note_failure(
        self, log: HopLog, name: str, exc: SmallfirstError, rung: int | None, plan: str
    ) -> None:
        log.add(
            "failure",
            model=name,
            tier=self._tier(name),
            rung=rung,
            outcome="deferred" if exc.error_type == "deferred" else "error",
            detail=f"{exc.message} ({plan})",
            error_status=exc.status,
            error_type=exc.error_type,
        )

    def _note_open(self, log: HopLog, name: str, rung: int | None) -> None:
        log.add(
            "failure",
            model=name,
            tier=self._tier(name),
            rung=rung,
            outcome="cooling_down",
            detail="skipped: circuit open after repeated failures",
        )

    def _note_fallback(self, log: HopLog, previous: str, name: str, rung: int | None) -> None:
        log.add(
            "fallback",
            model=name,
            tier=self._tier(name),
            rung=rung,
            outcome="next_model",
            detail=f"{previous} gave no answer; trying {name}",
        )

    def _note_skip(self, log: HopLog, name: str, rung: int | None, detail: str = OVER) -> None:
        log.add(
            "failure",
            model=name,
            tier=self._tier(name),
            rung=rung,
            outcome="skipped",
            detail=detail,
        )

    # -- streaming ------------------------------------------------------------------------------
    async def stream(
        self,
        request: AnyRequest,
        candidates: list[str],
        log: HopLog,
        deadline: Deadline,
        allow: Callable[[str], bool] | None = None,
        on_model: Callable[[str], None] | None = None,
    ) -> AsyncIterator[Delta]:
        """Deltas from the first candidate that starts answering: a stream is opened (retried,
        or handed to the next candidate) until its first text arrives; after that a failure
        ends the stream with that error, since the caller already sent bytes. `on_model` hears
        which model answers before its first delta is yielded. Hops are added only when it
        took more than one try."""

        async def open_stream(name: str) -> _OpenStream:
            return await self._open(request, name, deadline)

        before = len(log.hops)
        unfit = unfit_for(self.registry, request)
        name, opened = await self.run(
            candidates, open_stream, log, deadline, allow=allow, unfit=unfit
        )
        if on_model is not None:
            on_model(name)
        outcome = opened.outcome
        try:
            for delta in opened.head:
                yield delta
            async for delta in self._rest(opened, deadline):
                yield delta
        finally:
            await _close(opened.iterator)
        if outcome.error is not None:
            self._note_failure(log, name, outcome.error, None, "stream already started")
            await self.breaker.record_failure(name)
            raise outcome.error
        if len(log.hops) > before:  # only a stream that took more than one try has hops
            self._note_answer(log, name, outcome.generation(name), None)

    async def _open(self, request: AnyRequest, name: str, deadline: Deadline) -> _OpenStream:
        """Start `name`'s stream and read it up to its first text (or its end): everything
        that can still fail over happens here."""
        provider = self.registry.raw_provider(name)
        deltas = (
            provider.stream_chat(request)
            if isinstance(request, ChatRequest)
            else provider.stream_complete(request)
        )
        opened = _OpenStream(aiter(deltas))
        try:
            while not opened.outcome.started:
                delta = await self._next(opened, deadline)
                if delta is None:
                    break
                opened.head.append(delta)
        except BaseException:
            await _close(opened.iterator)
            raise
        return opened

    async def _rest(self, opened: _OpenStream, deadline: Deadline) -> AsyncIterator[Delta]:
        if opened.ended:
            return
        try:
            while (delta := await self._next(opened, deadline)) is not None:
                yield delta
        except SmallfirstError as exc:
            opened.outcome.error = exc

    async def _next(self, opened: _OpenStream, deadline: Deadline) -> Delta | None:
        """The next delta, None at the end; a deadline passed is an error. (A timeout scope,
        not `wait_for`: that starts a task for every delta of every stream.)"""
        try:
            async with asyncio.timeout(max(deadline.remaining(), 0.001)):
                delta = await anext(opened.iterator)
        except StopAsyncIteration:
            opened.ended = True
            return None
        except TimeoutError:
            raise self.deadline_error(deadline) from None
        opened.outcome.add(delta)
        return delta


@dataclass(slots=True)
class _OpenStream:
    """A stream that has started answering: what it sent so far and the rest to come."""

    iterator: AsyncIterator[Delta]
    head: list[Delta] = field(default_factory=list)
    outcome: _StreamOutcome = field(default_factory=lambda: _StreamOutcome())
    ended: bool = False


class _StreamOutcome:
    """What one streamed answer produced: its text, usage and finish, or its error."""

    def __init__(self) -> None:
        self.started = False
        self.parts: list[str] = []
        self.refusal: list[str] = []
        self.usage = Usage()
        self.finish = "stop"
        self.error: SmallfirstError | None = None
        self.began = time.perf_counter()

    def add(self, delta: Delta) -> None:
        if delta.text:
            self.started = True
            self.parts.append(delta.text)
        if delta.refusal:
            self.started = True
            self.refusal.append(delta.refusal)
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.finish_reason:
            self.finish = delta.finish_reason

    def generation(self, name: str) -> Generation:
        return Generation(
            text="".join(self.parts),
            model=name,
            finish_reason=self.finish,
            usage=self.usage,
            latency_s=time.perf_counter() - self.began,
            refusal="".join(self.refusal) or None,
        )


async def _close(iterator: AsyncIterator[Delta]) -> None:
    """Close the stream, unless it is still running a step (the client went away mid-step):
    the cancellation unwinds the generator itself, and `aclose()` on a running generator
    would raise over it."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None and not getattr(iterator, "ag_running", False):
        await aclose()


def _asked_wait(state: RetryCallState) -> float:
    """The wait the failed attempt asked for (carried on its `_Retry`)."""
    outcome = state.outcome
    failure = outcome.exception() if outcome is not None else None
    return failure.wait if isinstance(failure, _Retry) else 0.0


class _Retry(Exception):
    """This attempt failed and is worth another on the same model after `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class _NextModel(Exception):
    """This candidate is done (retries spent or circuit open): try the next one."""


class _GiveUp(Exception):
    """The deadline passed: stop trying candidates."""
