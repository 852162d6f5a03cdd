"""Candidates from names: a configured model, a router (`auto`, `router-...`) or anything
else the registry serves (students, replay models) running the user's task via `Task.run`.

Every name is checked before the first request, so a typo fails in a second, not after the
other candidates have spent an hour.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequestError, ModelNotFoundError
from smallfirst.evaluate.candidate import Prediction
from smallfirst.models.registry import Registry
from smallfirst.routing.base import resolve_router
from smallfirst.tasks import AnswerResult, ClassifyResult, ExtractResult, Task, TaskResult


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


def build_candidates(task: Task, names: Sequence[str], registry: Registry) -> list[TaskCandidate]:
    """One candidate per name, after checking each name resolves to a model or a router."""
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"a candidate is named twice in {', '.join(names)}")
    for name in names:
        if name not in registry.entries and resolve_router(name, registry) is None:
            raise ModelNotFoundError(
                f"{name!r} is neither a configured model nor a router. "
                f"Configured models: {', '.join(registry.names())}; "
                "routers: auto, router-<kind>-<threshold>",
                param="models",
            )
    return [TaskCandidate(task, name, registry) for name in names]
