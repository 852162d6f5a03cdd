"""Running a pipeline: independent steps concurrently, each on its model, the hard part escalated.

pipeline = Pipeline.from_yaml("examples/pipelines/document_analysis.yaml")
result = await pipeline.run(document, registry=registry, ledger=ledger)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from smallfirst.errors import SmallfirstError
from smallfirst.ledger import Ledger, LedgerEntry
from smallfirst.models.registry import Registry
from smallfirst.pipeline.conditions import holds
from smallfirst.pipeline.results import PipelineResult, StepResult, text_of
from smallfirst.pipeline.spec import PipelineSpec, StepSpec, load_pipeline, order_levels
from smallfirst.tasks import Task, parse_spec
from smallfirst.tasks.task import pick_model, run_blocking
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage


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
        ledger: Ledger | None = None,
        request_id: str | None = None,
        key_id: str | None = None,
    ) -> PipelineResult:
        started = time.time()
        clock = time.perf_counter()
        done: dict[str, StepResult] = {}
        for level in self.levels:
            results = await asyncio.gather(*(self._step(s, text, done, registry) for s in level))
            done.update({r.name: r for r in results})
        result = PipelineResult(
            self.name,
            request_id or f"pipe-{uuid.uuid4().hex[:16]}",
            {s.name: done[s.name] for s in self.spec.steps},
            time.perf_counter() - clock,
        )
        if ledger is not None:
            record(ledger, result, registry, started, key_id)
        return result

    def run_sync(self, text: str, **kwargs: Any) -> PipelineResult:
        return run_blocking(self.run(text, **kwargs))

    async def _step(
        self, step: StepSpec, text: str, done: dict[str, StepResult], registry: Registry
    ) -> StepResult:
        failed_inputs = [
            n for n in step.needs() if done[n].status == "failed" and n not in _tested_steps(step)
        ]
        if failed_inputs:
            return StepResult(step.name, "failed", reason=f"needs {failed_inputs}, which failed")
        if step.run_if is not None and (why := holds(step.run_if, text, done, registry)) is None:
            return StepResult(step.name, "skipped", reason="run_if did not hold")
        model, reason = step.model, None
        if step.escalate_if is not None:
            reason = holds(step.escalate_if, text, done, registry)
            model = step.escalate_to if reason else model
        elif step.run_if is not None:
            reason = why
        values = {"input": text, **{n: r.text for n, r in done.items()}}
        clock = time.perf_counter()
        try:
            result = await self._run_pieces(
                step, step.input.format_map(values), values, model, registry
            )
        except SmallfirstError as exc:
            return StepResult(
                step.name,
                "failed",
                model=model,
                reason=exc.message,
                latency_s=time.perf_counter() - clock,
            )
        result.latency_s = time.perf_counter() - clock
        result.reason, result.escalated = reason, step.escalate_if is not None and bool(reason)
        return result

    async def _run_pieces(
        self,
        step: StepSpec,
        text: str,
        values: dict[str, str],
        model: str | None,
        registry: Registry,
    ) -> StepResult:
        pieces = split(text, step.chunk_chars) if step.chunk_chars else [text]
        parts = await asyncio.gather(
            *(self._once(step, p, values, model, registry) for p in pieces)
        )
        if len(parts) == 1:
            return parts[0]
        merged = StepResult(step.name, "ok", model=parts[0].model, tier=parts[0].tier)
        merged.output = [p.output for p in parts]
        merged.text = "\n".join(p.text for p in parts)
        merged.usage = Usage(
            sum(p.usage.input_tokens for p in parts), sum(p.usage.output_tokens for p in parts)
        )
        merged.cost_usd = sum(p.cost_usd for p in parts)
        return merged

    async def _once(
        self,
        step: StepSpec,
        text: str,
        values: dict[str, str],
        model: str | None,
        registry: Registry,
    ) -> StepResult:
        if step.prompt is None:
            task = self.tasks[step.name]
            result = await task.run(text, model=model, registry=registry)
            entry = registry.get(result.model)
            output = result.to_dict()
            return StepResult(
                step.name,
                "ok",
                entry.name,
                entry.tier,
                output,
                text_of(output),
                result.usage,
                entry.price.cost(result.usage),
            )
        chosen, _router = pick_model(model or "default", text, registry)
        entry = registry.get(chosen)
        prompt = step.prompt.format_map({**values, "input": text})
        request = ChatRequest(
            [Message("user", prompt)], GenerationParams(max_tokens=step.max_tokens)
        )
        answer = await registry.provider(entry.name).chat(request)
        return StepResult(
            step.name,
            "ok",
            entry.name,
            entry.tier,
            answer.text,
            answer.text,
            answer.usage,
            entry.price.cost(answer.usage),
        )


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
    ledger: Ledger, result: PipelineResult, registry: Registry, started: float, key_id: str | None
) -> None:
    """One request row with the totals, then one hop row per step, under one request id."""
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
    for hop in step_hops(parent, result, registry):
        ledger.record(hop)


def priciest_step(result: PipelineResult) -> StepResult | None:
    """The step that cost the most: the model a pipeline request is filed under."""
    ran = [s for s in result.steps.values() if s.status == "ok"]
    return max(ran, key=lambda s: s.cost_usd, default=None)


def step_hops(parent: LedgerEntry, result: PipelineResult, registry: Registry) -> list[LedgerEntry]:
    baseline = registry.get(registry.baseline_model)
    return [
        LedgerEntry.for_hop(
            parent,
            hop,
            step.name,
            outcome=step.status,
            model=step.model,
            tier=step.tier,
            input_tokens=step.usage.input_tokens,
            output_tokens=step.usage.output_tokens,
            cost_usd=step.cost_usd,
            baseline_cost_usd=baseline.price.cost(step.usage),
            latency_ms=step.latency_s * 1000,
            route_reason=step.reason,
            ts=parent.ts,
            status=500 if step.status == "failed" else 200,
            error=step.reason if step.status == "failed" else None,
        )
        for hop, step in enumerate(result.steps.values(), start=1)
    ]
