"""Label inputs with a large teacher model, concurrently, resumably and within a $ cap.

Every finished item is committed to the bank at once, so an interrupted run loses only the
calls in flight; a rerun skips inputs whose content hash is already in the bank. Transient
errors are retried; an answer outside the output space is paid for once and recorded as a
failure (asking again at temperature 0 would buy the same answer), and a rerun asks again, with
what the failures cost adding up in the bank. Before each
call the worst-case cost (prompt ~ chars/4 tokens, answer = max_tokens) is reserved against the
cap, so the run stops cleanly *before* the cap would be crossed, not after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.embed_cache import text_hash
from smallfirst.distill.prompts import MalformedAnswer, parse_answer, says_none, teacher_messages
from smallfirst.errors import (
    AuthenticationError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SmallfirstError,
    UpstreamError,
)
from smallfirst.models.base import Provider
from smallfirst.models.pricing import ModelPrice
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage

FATAL = (AuthenticationError, PermissionDeniedError, ModelNotFoundError)
"""Errors that would fail every item the same way: the run stops instead of retrying."""
FATAL_STATUS = (401, 403, 404)
"""Upstream statuses meaning a wrong key, permission or model name: stop, do not retry."""


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
    max_usd: float | None = None
    concurrency: int = 8
    max_attempts: int = 3
    backoff_s: float = 0.5
    max_tokens: int = 256
    out_of_scope: bool = False
    """Let the teacher answer `none` for an input that fits no label (it becomes background)."""


class TeacherRun:
    """One labelling pass of `inputs` through `teacher` into `bank`."""

    def __init__(
        self,
        bank: ExampleBank,
        teacher: Provider,
        price: ModelPrice,
        task: dict[str, Any],
        settings: LabelSettings | None = None,
        on_progress: Callable[[LabelProgress], None] | None = None,
    ) -> None:
        self.bank, self.teacher, self.price, self.task = bank, teacher, price, task
        self.settings = settings or LabelSettings()
        self.on_progress = on_progress
        self._reserved = 0.0

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

    def _worst_case(self, text: str) -> float:
        system = self._messages("")[0].content
        prompt_tokens = (len(system) + len(text)) // 3 + 16
        return self.price.cost(Usage(prompt_tokens, self.settings.max_tokens))

    def _reserve(self, text: str, progress: LabelProgress) -> float | None:
        """Claim the worst-case cost of one call, or None (and stop) if the cap would break."""
        estimate = self._worst_case(text)
        cap = self.settings.max_usd
        if cap is not None and progress.cost_usd + self._reserved + estimate > cap:
            progress.stopped_by_cap = True
            return None
        self._reserved += estimate
        return estimate

    async def _label_one(self, text: str, progress: LabelProgress) -> None:
        spent, reason = 0.0, ""
        for attempt in range(1, self.settings.max_attempts + 1):
            estimate = self._reserve(text, progress)
            if estimate is None:
                return
            try:
                cost, stored = await self._ask(text)
                spent += cost
                progress.cost_usd += cost
                progress.labelled += int(stored == "example")
                progress.out_of_scope += int(stored == "background")
                return
            except _Charged as charged:
                spent += charged.cost
                progress.cost_usd += charged.cost
                reason = str(charged.cause)
                break  # the same prompt at temperature 0 gets the same answer: do not pay twice
            except FATAL:
                raise
            except (UpstreamError, RateLimitError) as exc:
                if getattr(exc, "upstream_status", None) in FATAL_STATUS:
                    raise
                reason = f"{type(exc).__name__}: {exc.message}"
                await asyncio.sleep(self._backoff(exc, attempt))
            except SmallfirstError as exc:
                reason = f"{type(exc).__name__}: {exc.message}"
                break
            finally:
                self._reserved -= estimate
        self.bank.record_failure(text, reason, attempt, spent)
        progress.failed += 1
        progress.failures[text] = reason

    def _backoff(self, exc: SmallfirstError, attempt: int) -> float:
        if attempt >= self.settings.max_attempts:
            return 0.0
        retry_after = getattr(exc, "retry_after", None)
        return (
            retry_after if retry_after is not None else self.settings.backoff_s * 2 ** (attempt - 1)
        )

    def _messages(self, text: str) -> list[Message]:
        return teacher_messages(self.task, text, out_of_scope=self.settings.out_of_scope)

    async def _ask(self, text: str) -> tuple[float, str]:
        """(cost, where the input went: `example`, `background` or `` when already stored)."""
        request = ChatRequest(
            self._messages(text),
            GenerationParams(max_tokens=self.settings.max_tokens, temperature=0.0),
        )
        generation = await self.teacher.chat(request)
        cost = self.price.cost(generation.usage)
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
            teacher=self.teacher.name,
            cost_usd=cost,
            input_tokens=generation.usage.input_tokens,
            output_tokens=generation.usage.output_tokens,
        )
        return cost, "example" if stored else ""


class _Charged(Exception):
    """The call succeeded (and cost money) but its answer was unusable."""

    def __init__(self, cost: float, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cost = cost
        self.cause = cause
