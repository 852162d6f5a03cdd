"""`Task`: the public face of a task spec. Declare what you want; `run` does the prompting.

task = Task(kind="classify", name="sentiment", labels=["negative", "neutral", "positive"])
result = await task.run("I love it", model="gemma-3-270m")   # result.label, .confidence
task.run_sync("I love it")                                      # the same, blocking
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from smallfirst.blocking import run_blocking
from smallfirst.config import load_config
from smallfirst.embeddings import Embedder
from smallfirst.errors import ConfigError, InvalidRequestError, SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.target import one_model_route
from smallfirst.tasks.escalation import tier_above
from smallfirst.tasks.examples import ExampleBank, parse_examples
from smallfirst.tasks.output import OutputInvalid, TaskOutputError, constraint_for, validate_fields
from smallfirst.tasks.results import Attempt, TaskResult, attempt_on, total_usage
from smallfirst.tasks.retrieval import Chunk, Retriever, StaticContext, retrieve
from smallfirst.tasks.runner import Call, run_call
from smallfirst.tasks.spec import (
    AnswerSpec,
    ClassifySpec,
    ExtractSpec,
    TaskSpec,
    load_spec,
    parse_spec,
)
from smallfirst.types import ChatRequest, Message


class Task:
    """A validated task spec plus its example bank, ready to run on any configured model."""

    def __init__(
        self,
        spec: TaskSpec | None = None,
        *,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        retriever: Retriever | None = None,
        embedder: Embedder | None = None,
        **fields: Any,
    ) -> None:
        """Either a parsed `spec`, or the spec's fields as keywords (`kind=`, `labels=`, ...).
        For `extract`, `schema` may be a pydantic model class: results are its instances."""
        self.output_model = schema if isinstance(schema, type) else None
        if spec is None:
            if schema is not None:
                fields["schema"] = _schema_of(schema)
            spec = parse_spec(fields, source="Task(...)")
        self.spec: TaskSpec = spec
        if isinstance(spec, ExtractSpec) and self.output_model is None and spec.pydantic_model:
            self.output_model = import_model(spec.pydantic_model)
        self.schema = _resolved_schema(spec, self.output_model)
        self.retriever = retriever
        self.bank = ExampleBank(parse_examples(spec.examples), embedder=embedder)
        _check_examples(self)
        self._registry: Registry | None = None

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Task:
        return cls(load_spec(path), **kwargs)

    @property
    def name(self) -> str:
        return self.spec.name

    def registry(self) -> Registry:
        """The registry used when `run` is given none: smallfirst.yaml, read once."""
        if self._registry is None:
            self._registry = Registry(load_config())
        return self._registry

    async def run(
        self,
        input: str,
        *,
        model: str | None = None,
        registry: Registry | None = None,
        retriever: Retriever | None = None,
        context: Sequence[str | Chunk] | None = None,
        escalate_on_failure: bool = False,
    ) -> TaskResult:
        """Run on one input. `model` is a configured model or a router name (`auto`,
        `router-...`); `retriever` / `context` feed an `answer` task its passages.

        When the model's output is still invalid (or empty) after its repair turn, this raises
        `TaskOutputError`; with `escalate_on_failure` the input goes up a tier instead, until a
        model answers or none is left. Every model that tried is in `result.tries`."""
        if not isinstance(input, str) or not input.strip():
            raise InvalidRequestError("the task input must be a non-empty string", param="input")
        registry = registry or self.registry()
        chosen, router = pick_model(model or self.spec.model or "default", input, registry)
        examples = self.bank.select(input, self.spec.few_shot.mode, self.spec.few_shot.k)
        chunks = await self._passages(input, retriever, context)
        tries: list[Attempt] = []
        last_failure: TaskOutputError | None = None
        while True:
            entry = registry.get(chosen)
            call = Call(
                spec=self.spec,
                provider=registry.provider(entry.name),
                model=entry.name,
                constraint=constraint_for(entry.config),
                style=entry.config.style,
                examples=examples,
                chunks=chunks,
                schema=self.schema,
                output_model=self.output_model,
                router=router,
            )
            started = time.perf_counter()
            try:
                result = await run_call(call, input)
            except TaskOutputError as failure:
                wrote, cost = registry.get(call.model), spent_usd(registry, call)
                tries.append(
                    attempt_on(wrote, failure.usage, started, "failed", failure.message, None, cost)
                )
                above = tier_above(registry, entry.name) if escalate_on_failure else None
                if above is None:
                    failure.tries, failure.usage = tries, total_usage(tries)
                    raise
                chosen, last_failure = above, failure
                continue
            except SmallfirstError as error:
                if last_failure is None:
                    raise
                # the escalation itself failed: report the model's failure, with its tokens
                raise TaskOutputError(
                    f"{last_failure.message}; escalating to {entry.name!r} failed: {error.message}",
                    outputs=last_failure.outputs,
                    usage=total_usage(tries),
                    tries=tries,
                ) from error
            answered = registry.get(result.model)  # a fallback may have answered
            finish, cost = result.finish_reason, spent_usd(registry, call)
            tries.append(attempt_on(answered, result.usage, started, "ok", None, finish, cost))
            result.tries, result.usage = tries, total_usage(tries)
            return result

    def run_sync(self, input: str, **kwargs: Any) -> TaskResult:
        """`run`, blocking. Calls share one background event loop, so HTTP clients and
        loaded models stay usable from call to call."""
        return run_blocking(self.run(input, **kwargs))

    async def _passages(
        self, query: str, retriever: Retriever | None, context: Sequence[str | Chunk] | None
    ) -> list[Chunk]:
        if not isinstance(self.spec, AnswerSpec):
            return []
        source = retriever or self.retriever
        if source is None and context is None and self.spec.knowledge_base:
            from smallfirst.retrieval import KnowledgeBase

            source = self.retriever = KnowledgeBase.open(self.spec.knowledge_base)
        if context is not None or source is None:
            source = StaticContext(list(context if context is not None else self.spec.context))
        return await retrieve(source, query, self.spec.k)


def spent_usd(registry: Registry, call: Call) -> float:
    """What the call's upstream answers cost, each at the rates of the model that wrote it."""
    return sum(registry.get(model).price.cost(usage) for model, usage in call.spent)


def pick_model(name: str, text: str, registry: Registry) -> tuple[str, str | None]:
    """(configured model, router name or None): a router decides on the input."""
    purpose = "a task (run one up a cascade with `smallfirst batch` or `smallfirst eval`)"
    route = one_model_route(name, registry, ChatRequest([Message("user", text)]), purpose)
    return route.model.name, route.decision.router if route.decision else None


def import_model(target: str) -> type[BaseModel]:
    """`package.module:ClassName` -> the pydantic model class, with a message naming the key."""
    module_name, _, attr = target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr) if attr else None
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"pydantic_model: cannot import {target!r}: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ConfigError(f"pydantic_model: {target!r} is not a pydantic model class")
    return found


def _schema_of(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    raise ConfigError("schema: give a pydantic model class or a JSON schema dict")


def _resolved_schema(spec: TaskSpec, model: type[BaseModel] | None) -> dict[str, Any] | None:
    if not isinstance(spec, ExtractSpec):
        return None
    return spec.output_schema if spec.output_schema is not None else _schema_of(model)  # type: ignore[arg-type]


def _check_examples(task: Task) -> None:
    """Examples must sit inside the output space, or they teach the model to leave it."""
    spec = task.spec
    for i, example in enumerate(task.bank.examples):
        if isinstance(spec, ClassifySpec) and example.output not in spec.label_names:
            raise ConfigError(
                f"examples[{i}]: output {example.output!r} is not one of the labels: "
                f"{', '.join(spec.label_names)}"
            )
        if isinstance(spec, ExtractSpec):
            if not isinstance(example.output, dict):
                raise ConfigError(f"examples[{i}]: an extract example's output must be a mapping")
            try:
                validate_fields(example.output, task.schema or {}, task.output_model)
            except OutputInvalid as exc:
                raise ConfigError(
                    f"examples[{i}]: output does not match the schema: {exc}"
                ) from None
