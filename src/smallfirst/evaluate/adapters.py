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

from smallfirst.errors import InvalidRequestError, ModelNotFoundError
from smallfirst.evaluate.candidate import Prediction
from smallfirst.models.registry import Registry
from smallfirst.routing.base import resolve_router
from smallfirst.routing.cascade import CASCADE_PREFIX, Cascade, Cascades
from smallfirst.tasks import (
    AnswerResult,
    AnswerSpec,
    ClassifyResult,
    ClassifySpec,
    ExtractResult,
    ExtractSpec,
    StaticContext,
    Task,
    TaskResult,
)
from smallfirst.tasks.output import parse_json_object, parse_label, validate_fields
from smallfirst.tasks.prompts import build_prompt
from smallfirst.tasks.retrieval import retrieve
from smallfirst.tasks.runner import default_max_tokens
from smallfirst.types import ChatRequest, GenerationParams, Usage


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

    def __init__(self, task: Task, name: str, cascade: Cascade) -> None:
        self.task = task
        self.name = name
        self.cascade = cascade

    async def predict(self, input: Any) -> Prediction:
        text, context = split_input(input)
        request = await task_request(self.task, text, context)
        started = time.perf_counter()
        result = await self.cascade.run(request)
        latency = time.perf_counter() - started
        usage = Usage(
            sum(h.input_tokens for h in result.hops), sum(h.output_tokens for h in result.hops)
        )
        output = parse_task_output(self.task, result.generation.text)
        return Prediction(output, usage, result.cost_usd, latency, result.model)


async def task_request(task: Task, text: str, context: list[str] | None) -> ChatRequest:
    """The task's chat prompt with no backend-specific constraint: rungs differ in backend,
    so the answer is checked after the fact instead."""
    spec = task.spec
    chunks = None
    if isinstance(spec, AnswerSpec):
        source = StaticContext(list(context if context is not None else spec.context))
        chunks = await retrieve(source, text, spec.k)
    examples = task.bank.select(text, spec.few_shot.mode, spec.few_shot.k)
    plan = build_prompt(spec, text, examples, "chat", "bare", chunks, task.schema)
    params = GenerationParams(
        max_tokens=spec.max_tokens or default_max_tokens(spec),
        temperature=spec.temperature,
        seed=0,
    )
    return ChatRequest(plan.messages, params)


def parse_task_output(task: Task, text: str) -> Any:
    """The label, the validated fields or the text; raises OutputInvalid when it is none."""
    spec = task.spec
    if isinstance(spec, ClassifySpec):
        return parse_label(text, spec.label_names)
    if isinstance(spec, ExtractSpec):
        return validate_fields(parse_json_object(text), task.schema or {}, task.output_model)
    return text.strip()


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
    cascades = Cascades(registry)
    candidates: list[NamedCandidate] = []
    for name in names:
        if cascades.cascade_name(name) is not None:
            candidates.append(CascadeCandidate(task, name, cascades.get(name)))
        elif _is_student(name, registry) and isinstance(task.spec, ClassifySpec):
            candidates.append(StudentCandidate(name, registry))
        elif name in registry.entries or resolve_router(name, registry) is not None:
            candidates.append(TaskCandidate(task, name, registry))
        else:
            known = ", ".join(CASCADE_PREFIX + n for n in registry.config.cascades) or "none"
            raise ModelNotFoundError(
                f"{name!r} is neither a configured model, a router nor a cascade. "
                f"Configured models: {', '.join(registry.names())}; "
                f"routers: auto, router-<kind>-<threshold>; cascades: {known}",
                param="models",
            )
    return candidates


def _is_student(name: str, registry: Registry) -> bool:
    entry = registry.entries.get(name)
    return entry is not None and entry.config.backend == "student"
