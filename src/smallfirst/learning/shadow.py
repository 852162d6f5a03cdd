"""Evidence gathered after the answer is sent: the other tier asked too, for a share of traffic.

For each answered request of a task (`Shadower.after`, from `GatewayLearning.finished`):

- served by the large model: a `served` row keeps its input and answer (free: what students
  and example banks learn from); with probability `shadow_rate` the small model is asked the
  same request and a `shadow` row holds the verdict;
- served below it (a promoted policy): with probability `audit_rate` the large model is
  asked, and an `audit` row holds the verdict.

The rates are the task's policy's, else the `learn:` config's. A cascade that escalated is
evidence of its own (`climbed`: its checks already failed the small answer), so it is not
shadowed again.

These calls never touch the client's answer or its key: they start after the request's row
is recorded, go to the backend itself (no fallback to another model, no retries, and no
failure counted against the model's circuit, which the client's requests share), are paid
from the daily learning budget (`budget.py`), never from the key's, and a request with
personal data (or routed `local` only) is never sent to a model, judge included, that is not
`local`. Each call is a hop row of the request (`step`: `shadow`, `audit`, `judge`) numbered
from `OFF_PATH_HOP`, so it never takes a number the request's own hops use; spend is summed
over request rows only, so it never counts as the client's. A failed call changes nothing
but its own rows: the hop says `error` and the evidence has no verdict and the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smallfirst.config import LearnConfig
from smallfirst.errors import SmallfirstError
from smallfirst.learning.budget import LearningBudget
from smallfirst.learning.inputs import input_text, whole_text
from smallfirst.learning.records import Evidence, EvidenceSource, OutputKind
from smallfirst.learning.store import LearningStore
from smallfirst.learning.tiers import large_model, small_model
from smallfirst.learning.verdicts import (
    JUDGE_MAX_TOKENS,
    Verdict,
    answer_text,
    compare,
    judge,
    judge_messages,
    output_kind,
)
from smallfirst.ledger.entry import LedgerEntry
from smallfirst.routing.checks import prompt_text
from smallfirst.routing.hops import CascadeResult
from smallfirst.routing.rules import find_pii
from smallfirst.server import admission
from smallfirst.server.redact import redact
from smallfirst.types import ChatRequest, CompletionRequest, Generation, Usage

if TYPE_CHECKING:
    from smallfirst.models.registry import ModelEntry
    from smallfirst.server.call import Call
    from smallfirst.server.gateway import Gateway

log = logging.getLogger("smallfirst.learning")

AnyRequest = ChatRequest | CompletionRequest
OFF_PATH_HOP = 1000
"""Learning's hop numbers start above it: a request's own hops count from 1."""
HOPS = {"shadow": OFF_PATH_HOP + 1, "audit": OFF_PATH_HOP + 1, "judge": OFF_PATH_HOP + 2}
MAX_IN_FLIGHT = 32
"""Shadow and audit calls at once (an embedded model: its slots); a draw beyond it is
skipped, so a hanging model cannot pile up work (and memory) without end."""
WRITE_EVERY_S = 0.5
WRITE_ROWS = 500
"""Evidence is written in batches: every `WRITE_EVERY_S`, or as soon as this many wait."""
RECENT_CASCADES = 4096
"""Escalated cascade requests remembered between `climbed` and `after` (not shadowed)."""


@dataclass(slots=True)
class Served:
    """What learning keeps of a finished request."""

    entry: LedgerEntry
    request: AnyRequest
    task: str
    model: str
    tier: str
    answer: str
    local_only: bool
    prompt_tokens: int

    @classmethod
    def of(cls, call: Call) -> Served | None:
        entry, request = call.entry, call.request
        task = entry.task or (request.task if request is not None else None)
        if request is None or task is None or entry.model is None or entry.outcome == "cache":
            return None  # not a model's answer to a task's request (a cache hit is a copy)
        answer = answer_text(call.answer, call.answer_tool_calls)
        prompt = call.estimate.prompt_tokens if call.estimate is not None else None
        if prompt is None:
            prompt = admission.text_tokens(whole_text(request))
        tier = entry.tier or ""
        return cls(entry, request, task, entry.model, tier, answer, call.local_only, prompt)

    @property
    def private(self) -> bool:
        """Only `local` models may see it: routed so, or personal data in the prompt."""
        return self.local_only or find_pii(whole_text(self.request)) is not None


class Shadower:
    def __init__(self, gateway: Gateway, store: LearningStore, config: LearnConfig) -> None:
        self.gateway = gateway
        self.store = store
        self.config = config
        registry = gateway.registry
        self.large = large_model(registry, config)
        self.small = small_model(registry, config)
        self.judge_model = registry.get(config.judge_model).name if config.judge_model else None
        self.large_tier = registry.get(self.large).tier
        self.budget = LearningBudget(store, config.budget_usd_per_day)
        self.random = random.Random()
        self.skipped_busy = 0
        """Draws skipped because `MAX_IN_FLIGHT` calls were already running."""
        self._asking = 0
        self._per_model: Counter[str] = Counter()
        """Calls in flight per model: an embedded model gets at most its slots, since a call
        queued behind others would spend its deadline waiting and time out."""
        self._work: set[asyncio.Task[None]] = set()
        self._pending: list[Evidence] = []
        self._writer: asyncio.Task[None] | None = None
        self._write_now = asyncio.Event()
        self._escalated: OrderedDict[str, bool] = OrderedDict()
        self.loop: asyncio.AbstractEventLoop | None = None
        """Where the work runs (a test in another thread drains through it)."""

    @property
    def budget_exhausted(self) -> bool:
        """Today's learning budget is spent: no shadow, audit or judge calls until 00:00 UTC."""
        return self.budget.exhausted

    # -- entry points ----------------------------------------------------------------------

    def after(self, call: Call) -> None:
        """A request's row is recorded: schedule what learning does with it, return at once."""
        self.loop = asyncio.get_running_loop()  # raises outside one, before any coroutine
        served = Served.of(call)
        if served is None:
            return
        escalated = self._escalated.pop(served.entry.request_id, False)
        self._spawn(self._learn(served, may_shadow=not escalated))

    def climbed(self, call: Call, request: AnyRequest, result: CascadeResult) -> None:
        """A cascade settled: when it escalated, the first rung's answer failed (a check, a
        deferral or an error) and the final one is the reference."""
        task = call.entry.task or request.task
        answered = [hop for hop in result.hops if hop.kind == "answer" and hop.model]
        if task is None or not result.escalations or not answered:
            return
        first = min(answered, key=lambda hop: (hop.rung or 0, hop.index))
        if first.model == result.model:
            return
        self._escalated[call.request_id] = True
        while len(self._escalated) > RECENT_CASCADES:
            self._escalated.popitem(last=False)
        why = next((hop.detail for hop in result.hops if hop.kind == "escalate"), "escalated")
        large = answer_text(result.generation.text, result.generation.tool_calls)
        kind = output_kind(request, large)
        self._keep(
            self._evidence(call.request_id, task, "cascade", kind, request, first.model, None)
            | {"large_model": result.model, "large_answer": large, "agree": False, "score": 0.0}
            | {"detail": why}
        )

    async def drain(self) -> None:
        """Wait for every scheduled call and evidence write (tests and benchmarks)."""
        while self._work or self._writer is not None:
            if self._work:
                await asyncio.gather(*self._work, return_exceptions=True)
            if self._writer is not None:
                self._write_now.set()
                await asyncio.gather(self._writer, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the calls in flight (a stopping gateway does not wait for a slow model) and
        store the evidence already gathered."""
        for task in list(self._work):
            task.cancel()
        await self.drain()

    # -- what each request gets --------------------------------------------------------------

    async def _learn(self, served: Served, may_shadow: bool) -> None:
        if served.tier != self.large_tier:
            kind = output_kind(served.request, served.answer)  # a transcript may say "label"
            if self._judgeable(kind) and self._draw(served.task, "audit"):
                await self._ask("audit", served, self.large)
            return
        kind = output_kind(served.request, served.answer)
        fields = self._evidence(
            served.entry.request_id, served.task, "served", kind, served.request, None, None
        )
        self._keep(fields | {"large_model": served.model, "large_answer": served.answer})
        small = self.small
        if not may_shadow or small is None or small == served.model:
            return
        if self._judgeable(kind) and self._draw(served.task, "shadow"):
            await self._ask("shadow", served, small)

    def _judgeable(self, kind: OutputKind) -> bool:
        """Free text needs a judge: without one it never moves down, so asking is waste."""
        return kind != "text" or self.judge_model is not None

    def _draw(self, task: str, step: str) -> bool:
        learning = self.gateway.learning
        policy = learning.policies.get(task) if learning and learning.policies else None
        if policy is not None:
            rate = policy.shadow_rate if step == "shadow" else policy.audit_rate
        else:
            own = self.config.for_task(task)
            rate = own.shadow_rate if step == "shadow" else own.audit_rate
        return rate > 0 and self.random.random() < rate

    async def _ask(self, step: EvidenceSource, served: Served, model: str) -> None:
        """Ask `model` the served request, compare the two answers, keep the evidence."""
        registry = self.gateway.registry
        entry = registry.get(model)
        if served.private and not entry.capabilities.local:
            log.debug("learning: %s not sent to %s: private request", step, model)
            return
        if self._asking >= MAX_IN_FLIGHT or self._per_model[model] >= _room(entry):
            self.skipped_busy += 1
            return
        self._asking += 1
        self._per_model[model] += 1
        try:
            generation, cost = await self._call(step, served, entry)
        finally:
            self._asking -= 1
            self._per_model[model] -= 1
        if generation is None:
            return
        answer = answer_text(generation.text, generation.tool_calls)
        small, large = (answer, served.answer) if step == "shadow" else (served.answer, answer)
        kind = output_kind(served.request, large)
        if kind == "text":
            verdict = await self._judge(served, small, large)
        else:
            verdict = compare(kind, small, large)
        verdict.cost_usd += cost
        self._keep_verdict(served, step, model, small, large, verdict, kind)

    async def _call(
        self, step: EvidenceSource, served: Served, entry: ModelEntry
    ) -> tuple[Generation | None, float]:
        """The shadow or audit call within the budget, its hop row, and on failure its
        evidence; (None, 0) when it was not made or failed."""
        max_tokens = served.request.params.max_tokens
        worst = admission.for_model(entry, served.prompt_tokens, max_tokens).cost_usd
        if not await self.budget.reserve(worst):
            return None, 0.0
        cost = 0.0
        started = time.perf_counter()
        try:
            generation = await self._generate(entry, served.request)
            cost = entry.price.cost(generation.usage)
        except Exception as exc:  # the client has its answer: this is only evidence lost
            self._hop(served, step, entry, None, 0.0, _ms_since(started), exc)
            error = f"{step} call to {entry.name} failed: {_error(exc)}"
            small, large = (None, served.answer) if step == "shadow" else (served.answer, None)
            self._keep_verdict(served, step, entry.name, small, large, Verdict(None, None, error))
            return None, 0.0
        finally:
            self.budget.settle(worst, cost)
        self._hop(served, step, entry, generation, cost, _ms_since(started))
        return generation, cost

    async def _generate(self, entry: ModelEntry, request: AnyRequest) -> Generation:
        """One attempt on the backend itself, within the failover deadline."""
        provider = self.gateway.registry.raw_provider(entry.name)
        pending = (
            provider.chat(request)
            if isinstance(request, ChatRequest)
            else provider.complete(request)
        )
        deadline = self.gateway.config.failover.deadline_s
        return await asyncio.wait_for(pending, timeout=deadline)

    async def _judge(self, served: Served, small: str, large: str) -> Verdict:
        """Pairwise by the judge model (both orders), paid from the learning budget."""
        if self.judge_model is None:
            return Verdict(None, None, "free text and no judge model (learn.judge_model)")
        registry = self.gateway.registry
        entry = registry.get(self.judge_model)
        if served.private and not entry.capabilities.local:
            return Verdict(None, None, f"not judged: private request, {entry.name} is not local")
        question = prompt_text(served.request)
        prompts = (judge_messages(question, small, large), judge_messages(question, large, small))
        tokens = sum(admission.text_tokens("".join(m.content for m in p)) for p in prompts)
        worst = entry.price.cost(Usage(tokens, 2 * JUDGE_MAX_TOKENS))
        if not await self.budget.reserve(worst):
            return Verdict(None, None, "not judged: today's learning budget is spent")
        verdict = Verdict(None, None, "not judged")
        try:
            provider = registry.raw_provider(entry.name)
            deadline = self.gateway.config.failover.deadline_s
            verdict = await asyncio.wait_for(
                judge(provider, entry.price, served.request, small, large), timeout=deadline
            )
        except Exception as exc:  # judge() catches its calls' errors; this is the deadline
            verdict = Verdict(None, None, f"judge failed: {_error(exc)}")
        finally:
            self.budget.settle(worst, verdict.cost_usd)
        failed = verdict.detail if verdict.detail.startswith("judge failed") else None
        self._judge_hop(served, entry, verdict, failed)
        return verdict

    # -- rows ------------------------------------------------------------------------------

    def _hop(
        self,
        served: Served,
        step: str,
        entry: ModelEntry,
        generation: Generation | None,
        cost: float,
        latency_ms: float,
        exc: BaseException | None = None,
    ) -> None:
        usage = generation.usage if generation is not None else Usage()
        self.gateway.record(
            LedgerEntry.for_hop(
                served.entry,
                HOPS[step],
                step,
                outcome="ok" if exc is None else "error",
                model=entry.name,
                tier=entry.tier,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost,
                latency_ms=latency_ms,
                route_reason=f"learning: {step} after the answer was sent",
                status=200 if exc is None else _status(exc),
                error=None if exc is None else _error(exc),
            )
        )

    def _judge_hop(
        self, served: Served, entry: ModelEntry, verdict: Verdict, failed: str | None
    ) -> None:
        usage = verdict.usage or Usage()
        self.gateway.record(
            LedgerEntry.for_hop(
                served.entry,
                HOPS["judge"],
                "judge",
                outcome="ok" if failed is None else "error",
                model=entry.name,
                tier=entry.tier,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=verdict.cost_usd,
                route_reason=f"learning: {verdict.detail}",
                status=200 if failed is None else 502,
                error=failed,
            )
        )

    def _evidence(
        self,
        request_id: str,
        task: str,
        source: EvidenceSource,
        kind: OutputKind,
        request: AnyRequest,
        small_model: str | None,
        small_answer: str | None,
    ) -> dict[str, Any]:
        """The fields every evidence row has; callers add the reference and the verdict."""
        return {
            "request_id": request_id,
            "task": task,
            "source": source,
            "output_kind": kind,
            "input": input_text(request),
            "small_model": small_model,
            "small_answer": small_answer,
            "large_model": None,
            "large_answer": None,
            "agree": None,
        }

    def _keep_verdict(
        self,
        served: Served,
        step: EvidenceSource,
        model: str,
        small: str | None,
        large: str | None,
        verdict: Verdict,
        kind: OutputKind | None = None,
    ) -> None:
        shadow = step == "shadow"
        small_model, large_model = (model, served.model) if shadow else (served.model, model)
        kind = kind or output_kind(served.request, large)
        fields = self._evidence(
            served.entry.request_id, served.task, step, kind, served.request, small_model, small
        )
        fields |= {"large_model": large_model, "large_answer": large, "agree": verdict.agree}
        fields |= {"score": verdict.score, "cost_usd": verdict.cost_usd, "detail": verdict.detail}
        self._keep(fields)

    def _keep(self, fields: dict[str, Any]) -> None:
        """Queue a row for the writer; rows that arrive while it writes go in its next batch."""
        if self.gateway.redact:
            for name in ("input", "small_answer", "large_answer"):
                fields[name] = fields[name] and redact(fields[name])
        self._pending.append(Evidence(**fields))
        if len(self._pending) >= WRITE_ROWS:
            self._write_now.set()
        if self._writer is None:
            self._writer = self._start(self._write())

    async def _write(self) -> None:
        """Every `WRITE_EVERY_S` (or at once when draining): one transaction for all the rows
        gathered meanwhile, not one per request beside the ledger's own writes."""
        try:
            while self._pending:
                if len(self._pending) < WRITE_ROWS:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._write_now.wait(), WRITE_EVERY_S)
                self._write_now.clear()
                batch, self._pending = self._pending, []
                try:
                    await self.budget.write(batch)
                except Exception:  # a database hiccup loses this evidence, never a request
                    log.exception("learning: could not store %d evidence row(s)", len(batch))
        finally:
            self._writer = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._start(coro)
        self._work.add(task)
        task.add_done_callback(self._done)

    def _start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task in a fresh context: nothing of the request (its failover scope) leaks in."""
        return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())

    def _done(self, task: asyncio.Task[None]) -> None:
        self._work.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("learning: evidence step failed", exc_info=task.exception())


def _room(entry: ModelEntry) -> int:
    """How many learning calls `entry` may have in flight: its slots when it decodes here."""
    return entry.config.slots if entry.capabilities.embedded else MAX_IN_FLIGHT


def _status(exc: BaseException) -> int:
    if isinstance(exc, SmallfirstError):
        return exc.status
    return 504 if isinstance(exc, TimeoutError) else 502


def _error(exc: BaseException) -> str:
    if isinstance(exc, SmallfirstError):
        return f"{exc.error_type}: {exc.message}"
    if isinstance(exc, TimeoutError):
        return "timeout: no answer within the failover deadline"
    return f"{type(exc).__name__}: {exc}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
