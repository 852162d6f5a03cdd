"""Candidates from names: a configured model, a router (`auto`, `router-...`) or anything
else the registry serves (replay models, ...) running the user's task via `Task.run`,
configured cascades (`cascade-<name>`) running the task's prompt up their ladder, and
students classifying whole batches (one embedding call per batch, not per input).

Every name is checked before the first request, so a typo fails in a second, not after the
other candidates have spent an hour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smallfirst.distill.provider import StudentProvider
from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.candidate import Prediction
from smallfirst.models.registry import Registry
from smallfirst.target import CascadeTarget, Targets
from smallfirst.tasks import (
    AnswerResult,
    ClassifyResult,
    ClassifySpec,
    ExtractResult,
    Task,
    TaskResult,
)
from smallfirst.tasks.on_cascade import run_on_cascade


def load_task(path: str | Path) -> Task:
    return Task.from_yaml(path)


class TaskCandidate:
    """A model or router name running a task; the cost is priced from the model that answered."""

    def __init__(self, task: Task, name: str, registry: Registry) -> None:
        self.task = task
        self.name = name
        self.registry = registry

    async def predict(self, input: Any) -> Prediction:
        text, context = split_input(input)
        started = time.perf_counter()
        result = await self.task.run(text, model=self.name, registry=self.registry, context=context)
        latency = time.perf_counter() - started
        price = self.registry.get(result.model).price
        return Prediction(
            output=output_of(result),
            usage=result.usage,
            cost_usd=price.cost(result.usage),
            latency_s=latency,
            model=result.model,
        )


def split_input(value: Any) -> tuple[str, list[str] | None]:
    """A text, or `{"question": ..., "context": text or [texts]}` for answer tasks."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("question"), str):
        context = value.get("context")
        if context is None:
            return value["question"], None
        return value["question"], [context] if isinstance(context, str) else list(context)
    raise InvalidRequestError(
        'an input must be a text or {"question": ..., "context": ...}', param="input"
    )


def output_of(result: TaskResult) -> Any:
    """What the metrics compare: the label, the extracted fields, or the text."""
    if isinstance(result, ClassifyResult):
        return result.label
    if isinstance(result, ExtractResult):
        return result.data
    if isinstance(result, AnswerResult):
        return result.text
    return getattr(result, "text", result.raw)


class CascadeCandidate:
    """A cascade answering the task's prompt: every hop's tokens and dollars are charged, so
    escalations and checks show up in its cost, and its output is checked like a model's."""

    def __init__(self, task: Task, target: CascadeTarget) -> None:
        self.task = task
        self.name = target.name
        self.target = target

    async def predict(self, input: Any) -> Prediction:
        text, context = split_input(input)
        started = time.perf_counter()
        found = await run_on_cascade(self.task, text, self.target, context)
        latency = time.perf_counter() - started
        return Prediction(found.output, found.usage, found.cost_usd, latency, found.model)


class StudentCandidate:
    """A `student` model on a classify task, fed batches: what the student backend answers
    (its label, or a deferral), with each input's latency its share of the batch's time."""

    batch_size = 64

    def __init__(self, name: str, registry: Registry) -> None:
        self.name = name
        self.registry = registry

    async def predict(self, input: Any) -> Prediction:
        return (await self.predict_batch([input]))[0]

    async def predict_batch(self, inputs: Sequence[Any]) -> list[Prediction]:
        texts = [split_input(value)[0] for value in inputs]
        student = self.registry.provider(self.name).student  # type: ignore[attr-defined]
        started = time.perf_counter()
        verdicts = await asyncio.to_thread(student.predict, texts)
        each = (time.perf_counter() - started) / max(1, len(texts))
        return [
            Prediction(v.label, latency_s=each, model=self.name)
            if v.answered
            else Prediction(None, latency_s=each, model=self.name, deferred=True)
            for v in verdicts
        ]


NamedCandidate = TaskCandidate | CascadeCandidate | StudentCandidate


def build_candidates(task: Task, names: Sequence[str], registry: Registry) -> list[NamedCandidate]:
    """One candidate per name, after checking each name resolves to a model, a router or a
    configured cascade."""
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"a candidate is named twice in {', '.join(names)}")
    targets = Targets(registry)
    candidates: list[NamedCandidate] = []
    for name in names:
        target = targets.resolve(name)  # unknown names: a 404 listing every usable name
        if isinstance(target, CascadeTarget):
            candidates.append(CascadeCandidate(task, target))
        elif _is_student(name, registry) and isinstance(task.spec, ClassifySpec):
            candidates.append(StudentCandidate(name, registry))
        else:
            candidates.append(TaskCandidate(task, name, registry))
    return candidates


def _is_student(name: str, registry: Registry) -> bool:
    entry = registry.entries.get(name)
    return entry is not None and isinstance(registry.raw_provider(name), StudentProvider)
