"""Label inputs with a large teacher model, concurrently, resumably and within a $ cap.

Every finished item is committed to the bank at once, so an interrupted run loses only the
calls in flight; a rerun skips inputs whose content hash is already in the bank. The teacher is
the registry's wrapped provider, so transient errors are retried, and models fallen back to, by
the `failover:` policy like every other call (backoff, Retry-After, circuit breaker); a fallback
is tried only when its worst case fits what was reserved for the item, and the example then
names it and is priced at its rates. An answer outside the output space is paid for once and
recorded as a failure (asking again at temperature 0 would buy the same answer), and a rerun
asks again, with what the failures cost adding up in the bank. Before each item the worst-case
cost (prompt ~ chars/3 tokens, answer = max_tokens) is reserved against the cap, so the run
stops cleanly *before* the cap would be crossed, not after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.embed_cache import text_hash
from smallfirst.distill.prompts import MalformedAnswer, parse_answer, says_none, teacher_messages
from smallfirst.errors import (
    AuthenticationError,
    ModelNotFoundError,
    PermissionDeniedError,
    SmallfirstError,
)
from smallfirst.models.base import Provider
from smallfirst.models.pricing import ModelPrice
from smallfirst.routing.hops import HopLog
from smallfirst.routing.resilience import failover_scope
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage

if TYPE_CHECKING:
    from smallfirst.models.registry import Registry

FATAL = (AuthenticationError, PermissionDeniedError, ModelNotFoundError)
"""Errors that would fail every item the same way: the run stops instead of going on."""
FATAL_STATUS = (401, 403, 404)
"""Upstream statuses meaning a wrong key, permission or model name: stop the run."""


@dataclass
class LabelProgress:
    """A snapshot passed to `on_progress` after each item finishes."""

    total: int
    done: int = 0
    labelled: int = 0
    failed: int = 0
    skipped: int = 0
    out_of_scope: int = 0
    """Inputs the teacher said fit no label, stored as background (`out_of_scope` runs)."""
    cost_usd: float = 0.0
    stopped_by_cap: bool = False
    failures: dict[str, str] = field(default_factory=dict)
    """input -> reason, for the items given up on in this run."""


@dataclass
class LabelSettings:
    """How a run labels; retries are the registry's `failover:` policy (`failover.retries`)."""

    max_usd: float | None = None
    concurrency: int = 8
    max_tokens: int = 256
    out_of_scope: bool = False
    """Let the teacher answer `none` for an input that fits no label (it becomes background)."""


PriceOf = Callable[[str], ModelPrice]


class TeacherRun:
    """One labelling pass of `inputs` through `teacher` into `bank`.

    `teacher` is a registry's wrapped provider (`Registry.provider`, see `from_registry`);
    `price_of` prices the model that answered when a fallback did (None: no fallback fits)."""

    def __init__(
        self,
        bank: ExampleBank,
        teacher: Provider,
        price: ModelPrice,
        task: dict[str, Any],
        settings: LabelSettings | None = None,
        on_progress: Callable[[LabelProgress], None] | None = None,
        price_of: PriceOf | None = None,
    ) -> None:
        self.bank, self.teacher, self.price, self.task = bank, teacher, price, task
        self.settings = settings or LabelSettings()
        self.on_progress = on_progress
        self.price_of = price_of
        self._reserved = 0.0

    @classmethod
    def from_registry(
        cls,
        bank: ExampleBank,
        registry: Registry,
        teacher: str,
        task: dict[str, Any],
        settings: LabelSettings | None = None,
        on_progress: Callable[[LabelProgress], None] | None = None,
    ) -> TeacherRun:
        """The configured model `teacher`, behind the registry's failover policy."""
        price = registry.get(teacher).price
        provider = registry.provider(teacher)

        def price_of(name: str) -> ModelPrice:
            return registry.get(name).price

        return cls(bank, provider, price, task, settings, on_progress, price_of)

    async def run(self, inputs: Iterable[str]) -> LabelProgress:
        todo, skipped = self._pending(inputs)
        progress = LabelProgress(total=len(todo), skipped=skipped)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for text in todo:
            queue.put_nowait(text)
        workers = [
            asyncio.create_task(self._worker(queue, progress))
            for _ in range(max(1, min(self.settings.concurrency, len(todo))))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
        return progress

    def _pending(self, inputs: Iterable[str]) -> tuple[list[str], int]:
        """Unique inputs not yet in the bank, in order; and how many were skipped."""
        known = self.bank.settled_hashes()
        seen: set[str] = set()
        todo: list[str] = []
        skipped = 0
        for text in inputs:
            key = text_hash(text)
            if key in known:
                skipped += 1
            elif key not in seen:
                seen.add(key)
                todo.append(text)
        return todo, skipped

    async def _worker(self, queue: asyncio.Queue[str], progress: LabelProgress) -> None:
        while not queue.empty() and not progress.stopped_by_cap:
            text = queue.get_nowait()
            await self._label_one(text, progress)
            progress.done += 1
            if self.on_progress is not None:
                self.on_progress(progress)

    def _worst_usage(self, text: str) -> Usage:
        system = self._messages("")[0].content
        prompt_tokens = (len(system) + len(text)) // 3 + 16
        return Usage(prompt_tokens, self.settings.max_tokens)

    def _reserve(self, text: str, progress: LabelProgress) -> float | None:
        """Claim the worst-case cost of one item, or None (and stop) if the cap would break."""
        estimate = self.price.cost(self._worst_usage(text))
        cap = self.settings.max_usd
        if cap is not None and progress.cost_usd + self._reserved + estimate > cap:
            progress.stopped_by_cap = True
            return None
        self._reserved += estimate
        return estimate

    async def _label_one(self, text: str, progress: LabelProgress) -> None:
        """Ask once (the failover policy retries and falls back inside); a failure is recorded
        with every attempt it took and what they cost, or stops the run when it is fatal."""
        estimate = self._reserve(text, progress)
        if estimate is None:
            return
        worst = self._worst_usage(text)

        def fits(name: str) -> bool:  # a fallback must not break the reservation (the cap)
            return self.price_of is not None and self.price_of(name).cost(worst) <= estimate

        log, spent = HopLog(), 0.0
        answered: list[str] = []
        try:
            with failover_scope(log, fits, answered.append):
                cost, stored = await self._ask(text, answered)
            progress.cost_usd += cost
            progress.labelled += int(stored == "example")
            progress.out_of_scope += int(stored == "background")
            return
        except _Charged as charged:  # the same prompt at temperature 0 gets the same answer
            spent, reason, paid = charged.cost, str(charged.cause), 1
            progress.cost_usd += spent
        except FATAL:
            raise
        except SmallfirstError as exc:
            if getattr(exc, "upstream_status", None) in FATAL_STATUS:
                raise
            reason, paid = f"{type(exc).__name__}: {exc.message}", 0
        finally:
            self._reserved -= estimate
        self.bank.record_failure(text, reason, _failed_attempts(log) + paid, spent)
        progress.failed += 1
        progress.failures[text] = reason

    def _messages(self, text: str) -> list[Message]:
        return teacher_messages(self.task, text, out_of_scope=self.settings.out_of_scope)

    async def _ask(self, text: str, answered: list[str]) -> tuple[float, str]:
        """(cost, where the input went: `example`, `background` or `` when already stored).
        `answered` names the fallback model that answered, if one did."""
        request = ChatRequest(
            self._messages(text),
            GenerationParams(max_tokens=self.settings.max_tokens, temperature=0.0),
        )
        generation = await self.teacher.chat(request)
        teacher, price = self.teacher.name, self.price
        if answered and self.price_of is not None:
            teacher, price = answered[-1], self.price_of(answered[-1])
        cost = price.cost(generation.usage)
        if self.settings.out_of_scope and says_none(self.task, generation.text):
            return cost, "background" if self.bank.add_out_of_scope(text, cost) else ""
        try:
            output, label = parse_answer(self.task, generation.text)
        except MalformedAnswer as exc:
            raise _Charged(cost, exc) from None
        stored = self.bank.add(
            text,
            output,
            label=label,
            teacher=teacher,
            cost_usd=cost,
            input_tokens=generation.usage.input_tokens,
            output_tokens=generation.usage.output_tokens,
        )
        return cost, "example" if stored else ""


def _failed_attempts(log: HopLog) -> int:
    """Calls that reached a model and failed (not models skipped for cost or a cooldown)."""
    return sum(1 for hop in log.hops if hop.kind == "failure" and hop.outcome == "error")


class _Charged(Exception):
    """The call succeeded (and cost money) but its answer was unusable."""

    def __init__(self, cost: float, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cost = cost
        self.cause = cause
