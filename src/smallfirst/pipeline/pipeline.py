"""Running a pipeline: independent steps concurrently, each on its model, the hard part escalated.

pipeline = Pipeline.from_yaml("examples/pipelines/document_analysis.yaml")
result = await pipeline.run(document, registry=registry, ledger=ledger)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.blocking import run_blocking
from smallfirst.errors import SmallfirstError
from smallfirst.ledger import LedgerEntry
from smallfirst.ledger.sink import RowSink
from smallfirst.models.registry import Registry
from smallfirst.pipeline.conditions import holds
from smallfirst.pipeline.results import PipelineResult, StepResult, text_of
from smallfirst.pipeline.shared_pieces import SharedPieces, shared_pieces
from smallfirst.pipeline.spec import PipelineSpec, StepSpec, load_pipeline, order_levels
from smallfirst.routing.hops import Hop, HopLog
from smallfirst.routing.requirements import fits_context
from smallfirst.routing.resilience import failover_scope
from smallfirst.tasks import Task, TaskOutputError, parse_spec
from smallfirst.tasks.escalation import tier_above
from smallfirst.tasks.results import Attempt, attempt_on
from smallfirst.tasks.task import pick_model
from smallfirst.types import TIERS, ChatRequest, GenerationParams, Message


class Pipeline:
    def __init__(self, spec: PipelineSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        base = base_dir or Path.cwd()
        self.tasks: dict[str, Task] = {
            step.name: _task_for(step, base) for step in spec.steps if step.task is not None
        }
        self.levels = order_levels(spec.steps)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        path = Path(path)
        return cls(load_pipeline(path), base_dir=path.parent)

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(
        self,
        text: str,
        *,
        registry: Registry,
        ledger: RowSink | None = None,
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> PipelineResult:
        started = time.time()
        clock = time.perf_counter()
        done: dict[str, StepResult] = {}
        failover = HopLog(request_id or f"pipe-{uuid.uuid4().hex[:16]}")
        with failover_scope(failover):  # the providers' retries and fallbacks, as hops
            for level in self.levels:
                gates = shared_pieces(level, self.tasks, registry)
                steps = (self._step(s, text, done, registry, gates.get(s.name)) for s in level)
                done.update({r.name: r for r in await asyncio.gather(*steps)})
        result = PipelineResult(
            self.name,
            failover.request_id,
            {s.name: done[s.name] for s in self.spec.steps},
            time.perf_counter() - clock,
        )
        if ledger is not None:
            record(ledger, result, registry, started, key_id, failover.hops)
        return result

    def run_sync(self, text: str, **kwargs: Any) -> PipelineResult:
        return run_blocking(self.run(text, **kwargs))

    async def _step(
        self,
        step: StepSpec,
        text: str,
        done: dict[str, StepResult],
        registry: Registry,
        gate: SharedPieces | None = None,
    ) -> StepResult:
        failed_inputs = [
            n for n in step.needs() if done[n].status == "failed" and n not in _tested_steps(step)
        ]
        if failed_inputs:
            if gate is not None:
                gate.withdraw()
            return StepResult(step.name, "failed", reason=f"needs {failed_inputs}, which failed")
        if step.run_if is not None and (why := holds(step.run_if, text, done, registry)) is None:
            if gate is not None:
                gate.withdraw()
            return StepResult(step.name, "skipped", reason="run_if did not hold")
        model, reason = step.model, None
        if step.escalate_if is not None:
            reason = holds(step.escalate_if, text, done, registry)
            model = step.escalate_to if reason else model
        elif step.run_if is not None:
            reason = why
        values = {"input": text, **{n: r.text for n, r in done.items()}}
        source = step.input.format_map(values)
        pieces = split(source, step.chunk_chars) if step.chunk_chars else [source]
        clock = time.perf_counter()

        async def one(index: int, piece: str) -> Piece:
            where = index if len(pieces) > 1 else None
            if gate is None:
                return await self._piece(step, piece, values, model, registry, where)
            async with gate.turn(index):
                return await self._piece(step, piece, values, model, registry, where)

        done_pieces = await asyncio.gather(*(one(i, p) for i, p in enumerate(pieces)))
        whole = None
        if self.spec.escalates(step):
            whole = await self._whole_step_up(step, source, values, done_pieces, registry)
            if whole is None:
                done_pieces = await self._pieces_up(step, values, pieces, done_pieces, registry)
        result = merge_pieces(step.name, [whole.piece] if whole else done_pieces, model)
        if whole is not None and result.status == "ok":
            result.escalated, result.reason = True, whole.reason
        result.latency_s = time.perf_counter() - clock
        if result.status == "ok" and reason:
            result.escalated = result.escalated or step.escalate_if is not None
            result.reason = reason if result.reason is None else f"{reason}; {result.reason}"
        return result

    async def _whole_step_up(
        self,
        step: StepSpec,
        source: str,
        values: dict[str, str],
        done: list[Piece],
        registry: Registry,
    ) -> WholeStep | None:
        """When most pieces failed on their model, escalating each would resend the whole
        input in pieces, each with the step's instructions: the whole input goes up a tier
        once instead, if it fits that model's context. None: escalate piece by piece."""
        failed = [p for p in done if p.failure is not None and p.tries]
        if len(done) < 2 or 2 * len(failed) <= len(done):
            return None
        small = failed[0].tries[-1].model
        above = tier_above(registry, small)
        if above is None:
            return None
        request = ChatRequest(
            [Message("user", source)], GenerationParams(max_tokens=step.max_tokens)
        )
        if not fits_context(registry.get(above), request):
            return None
        piece = await self._piece(step, source, values, above, registry, None, escalate=True)
        piece.tries = [t for p in done for t in p.tries] + piece.tries  # the small tries cost too
        reason = (
            f"{len(failed)} of {len(done)} pieces failed on {small}: the whole step went to "
            f"{above}; piece 1's failure: {failed[0].failure}"
        )
        return WholeStep(piece, reason)

    async def _pieces_up(
        self,
        step: StepSpec,
        values: dict[str, str],
        texts: list[str],
        done: list[Piece],
        registry: Registry,
    ) -> list[Piece]:
        """Each piece whose answer failed (not one whose model errored) tried again from the
        tier above its model, its earlier tries kept."""

        async def again(index: int, piece: Piece) -> Piece:
            if piece.failure is None or not piece.tries:
                return piece
            above = tier_above(registry, piece.tries[-1].model)
            if above is None:
                return piece
            where = index if len(texts) > 1 else None
            retried = await self._piece(
                step, texts[index], values, above, registry, where, escalate=True
            )
            retried.tries = piece.tries + retried.tries
            if retried.failure is not None and retried.tries:
                retried.failure = f"{piece.failure}; after escalating: {retried.failure}"
            return retried

        return list(await asyncio.gather(*(again(i, p) for i, p in enumerate(done))))

    async def _piece(
        self,
        step: StepSpec,
        text: str,
        values: dict[str, str],
        model: str | None,
        registry: Registry,
        index: int | None,
        escalate: bool = False,
    ) -> Piece:
        """One try on `model`; with `escalate`, up the tiers until one answers validly."""
        if step.prompt is None:
            piece = await self._task_piece(self.tasks[step.name], text, model, registry, escalate)
        else:
            prompt = step.prompt.format_map({**values, "input": text})
            piece = await self._prompt_piece(step, prompt, model, registry, escalate)
        for attempt in piece.tries:
            attempt.piece = index
        return piece

    async def _task_piece(
        self, task: Task, text: str, model: str | None, registry: Registry, escalate: bool
    ) -> Piece:
        try:
            result = await task.run(
                text, model=model, registry=registry, escalate_on_failure=escalate
            )
        except TaskOutputError as failure:
            return Piece(tries=failure.tries, failure=failure.message)
        except SmallfirstError as error:
            return Piece(failure=error.message)
        output = result.to_dict()
        output.pop("tries", None)
        return Piece(output, text_of(output), result.tries)

    async def _prompt_piece(
        self, step: StepSpec, prompt: str, model: str | None, registry: Registry, escalate: bool
    ) -> Piece:
        """A plain chat step; an empty answer goes up a tier like a task's invalid one."""
        chosen: str | None = pick_model(model or "default", prompt, registry)[0]
        request = ChatRequest(
            [Message("user", prompt)], GenerationParams(max_tokens=step.max_tokens)
        )
        piece = Piece()
        while chosen is not None:
            entry = registry.get(chosen)
            started = time.perf_counter()
            try:
                answer = await registry.provider(entry.name).chat(request)
            except SmallfirstError as error:
                escalating = f"{piece.failure}; escalating to {entry.name!r} failed: "
                piece.failure = (escalating if piece.tries else "") + error.message
                return piece
            entry = registry.get(answer.model)  # a fallback may have answered
            if answer.text.strip():
                piece.tries.append(
                    attempt_on(entry, answer.usage, started, "ok", None, answer.finish_reason)
                )
                piece.output = piece.text = answer.text
                piece.failure = None
                return piece
            piece.failure = f"model {entry.name!r} gave an empty answer"
            piece.tries.append(attempt_on(entry, answer.usage, started, "failed", piece.failure))
            chosen = tier_above(registry, entry.name) if escalate else None
        return piece


@dataclass(slots=True)
class WholeStep:
    piece: Piece
    reason: str


@dataclass(slots=True)
class Piece:
    """One piece of a step's input, done: its output, or why it failed, and every try."""

    output: Any = None
    text: str = ""
    tries: list[Attempt] = field(default_factory=list)
    failure: str | None = None


def merge_pieces(name: str, pieces: list[Piece], model: str | None) -> StepResult:
    """The step's result from its pieces: failed if any piece failed even after escalating;
    otherwise every piece's output, filed under the highest tier that answered."""
    tries = [t for piece in pieces for t in piece.tries]
    where = (lambda i: f"piece {i + 1} of {len(pieces)}: ") if len(pieces) > 1 else (lambda i: "")
    failed = [(i, p) for i, p in enumerate(pieces) if p.failure is not None]
    if failed:
        i, piece = failed[0]
        last = piece.tries[-1] if piece.tries else None
        return StepResult(
            name,
            "failed",
            model=last.model if last else model,
            tier=last.tier if last else None,
            tries=tries,
            reason=where(i) + str(piece.failure),
        )
    answers = [piece.tries[-1] for piece in pieces]
    top = max(answers, key=lambda a: TIERS.index(a.tier))
    result = StepResult(name, "ok", top.model, top.tier, tries=tries)
    result.output = pieces[0].output if len(pieces) == 1 else [p.output for p in pieces]
    result.text = "\n".join(p.text for p in pieces)
    result.finish_reason = "length" if any(a.finish_reason == "length" for a in answers) else "stop"
    moved = [(i, p) for i, p in enumerate(pieces) if len(p.tries) > 1]
    if moved:
        i, piece = moved[0]
        result.escalated = True
        result.reason = (
            f"{len(moved)} of {len(pieces)} pieces escalated to {top.model}; "
            f"{where(i)}{piece.tries[0].reason}"
        )
    return result


def _tested_steps(step: StepSpec) -> set[str]:
    """Steps a condition only tests (a failure there is information, not a missing input)."""
    tested: set[str] = set()
    for condition in (step.run_if, step.escalate_if):
        if condition is not None:
            tested |= condition.steps()
    return tested


def _task_for(step: StepSpec, base: Path) -> Task:
    if isinstance(step.task, str):
        return Task.from_yaml(base / step.task)
    spec = dict(step.task or {})
    spec.setdefault("name", step.name)
    return Task(parse_spec(spec, source=f"step {step.name!r} task"))


def split(text: str, size: int) -> list[str]:
    """Pieces of about `size` characters, cut at paragraph or line ends where possible."""
    pieces: list[str] = []
    rest = text
    while len(rest) > size:
        cut = max(rest.rfind("\n\n", 0, size), rest.rfind("\n", 0, size))
        cut = cut if cut > size // 2 else size
        pieces.append(rest[:cut].strip())
        rest = rest[cut:]
    if rest.strip():
        pieces.append(rest.strip())
    return pieces or [text]


def record(
    ledger: RowSink,
    result: PipelineResult,
    registry: Registry,
    started: float,
    key_id: str | None,
    failover: Sequence[Hop] = (),
) -> None:
    """One request row with the totals, then one hop row per step, then one per retry or
    fallback the providers made (`failover`; its tokens and cost are the steps'), under one
    request id."""
    usage = result.usage
    top = priciest_step(result)
    failed = [s.name for s in result.steps.values() if s.status == "failed"]
    baseline = registry.get(registry.baseline_model)
    parent = LedgerEntry(
        request_id=result.request_id,
        ts=started,
        endpoint="pipeline",
        key_id=key_id,
        requested_model=f"pipeline:{result.pipeline}",
        model=top.model if top else None,
        tier=top.tier if top else None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=result.cost_usd,
        baseline_model=baseline.name,
        baseline_cost_usd=baseline.price.cost(usage),
        latency_ms=result.latency_s * 1000,
        status=200,
        error=f"steps failed: {failed}" if failed else None,
    )
    ledger.record(parent)
    rows = step_hops(parent, result, registry)
    for hop in failover:
        rows.append(
            LedgerEntry.for_hop(
                parent,
                len(rows) + 1,
                hop.kind,
                outcome=hop.outcome,
                ts=hop.at,
                model=hop.model,
                tier=hop.tier,
                route_reason=hop.detail,
                status=hop.error_status or 200,
                error=f"{hop.error_type}: {hop.detail}" if hop.error_type else None,
            )
        )
    for row in rows:
        ledger.record(row)


def priciest_step(result: PipelineResult) -> StepResult | None:
    """The step that cost the most: the model a pipeline request is filed under."""
    ran = [s for s in result.steps.values() if s.status == "ok"]
    return max(ran, key=lambda s: s.cost_usd, default=None)


def step_hops(parent: LedgerEntry, result: PipelineResult, registry: Registry) -> list[LedgerEntry]:
    """One hop row per attempt (a failed one, then the tier it escalated to), or one row for a
    step that made no call (skipped, or its inputs failed)."""
    baseline = registry.get(registry.baseline_model)
    rows: list[LedgerEntry] = []
    for step in result.steps.values():
        for attempt, outcome, why in _attempt_rows(step):
            rows.append(
                LedgerEntry.for_hop(
                    parent,
                    len(rows) + 1,
                    step.name,
                    outcome=outcome,
                    model=attempt.model if attempt else step.model,
                    tier=attempt.tier if attempt else step.tier,
                    input_tokens=attempt.usage.input_tokens if attempt else 0,
                    output_tokens=attempt.usage.output_tokens if attempt else 0,
                    cost_usd=attempt.cost_usd if attempt else 0.0,
                    baseline_cost_usd=baseline.price.cost(attempt.usage) if attempt else 0.0,
                    latency_ms=(attempt.latency_s if attempt else step.latency_s) * 1000,
                    route_reason=why,
                    ts=parent.ts,
                    status=500 if outcome == "failed" else 200,
                    error=why if outcome == "failed" else None,
                )
            )
    return rows


def _attempt_rows(step: StepResult) -> list[tuple[Attempt | None, str, str | None]]:
    """(attempt, outcome, reason) per hop row: `failed` for a model that failed a piece,
    `escalated` for the tier that answered it instead, else the step's own status."""
    if not step.tries:
        return [(None, step.status, step.reason)]
    rows: list[tuple[Attempt | None, str, str | None]] = []
    failed_before: dict[int | None, str | None] = {}
    for attempt in step.tries:
        piece = f"piece {attempt.piece + 1}: " if attempt.piece is not None else ""
        if attempt.outcome == "failed":
            failed_before[attempt.piece] = attempt.reason
            rows.append((attempt, "failed", piece + str(attempt.reason)))
        elif attempt.piece in failed_before:
            rows.append((attempt, "escalated", f"{piece}after: {failed_before[attempt.piece]}"))
        else:
            rows.append((attempt, "ok", step.reason))
    return rows
