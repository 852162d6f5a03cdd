"""What a batch does to one item: call a model, run a task, or run a pipeline.

Given a ledger, each item is recorded as the gateway records a request: a model or task item by
`ledger_rows.recorded` (a request row and a hop row per retry, fallback, rung and check), a
pipeline item by the pipeline itself (its request row, a hop row per step and per retry).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from smallfirst.batch.ledger_rows import recorded
from smallfirst.errors import InvalidRequestError
from smallfirst.ledger.sink import RowSink
from smallfirst.models.registry import Registry
from smallfirst.routing.hops import HopLog
from smallfirst.target import CascadeTarget, ModelTarget, resolve
from smallfirst.tasks.on_cascade import run_on_cascade
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage
from smallfirst.wire.fields import FORWARDED
from smallfirst.wire.schemas import ChatBody, validate

INPUT_FIELDS = ("input", "text", "prompt", "question", "content")


@dataclass(slots=True)
class Processed:
    output: dict[str, Any]
    usage: Usage
    cost_usd: float
    model: str


class Processor(Protocol):
    job: dict[str, Any]
    """What identifies this job in the journal (so a resume uses the same settings)."""

    async def process(self, data: dict[str, Any]) -> Processed: ...


def input_text(data: dict[str, Any]) -> str:
    for key in INPUT_FIELDS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise InvalidRequestError(f"no input text: give one of the fields {', '.join(INPUT_FIELDS)}")


def chat_of(data: dict[str, Any], max_tokens: int | None) -> ChatRequest:
    """An item as a chat request: an OpenAI Batch line's body, `messages`, or a text field."""
    body = inner if isinstance(inner := data.get("body"), dict) else data
    raw = body.get("messages")
    semantics = GenerationParams()
    if isinstance(raw, list):
        try:
            messages = [Message.from_openai(m) for m in raw]
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequestError(f"messages are malformed: {exc}") from None
        semantics = _chat_semantics(body)
    else:
        messages = [Message("user", input_text(body))]
    wanted = body.get("max_tokens", max_tokens)
    temperature = body.get("temperature")
    if wanted is not None and not (_is_number(wanted, int) and wanted >= 1):
        raise InvalidRequestError(f"max_tokens must be a positive integer, not {wanted!r}")
    if temperature is not None and not (_is_number(temperature, float) and 0 <= temperature <= 2):
        raise InvalidRequestError(f"temperature must be a number from 0 to 2, not {temperature!r}")
    params = replace(semantics, max_tokens=wanted, temperature=temperature)
    return ChatRequest(messages, params)


SEMANTIC_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")


def _chat_semantics(body: dict[str, Any]) -> GenerationParams:
    """Tools and structured output of a chat body, validated as the gateway validates them;
    a field only pass-through could honour is refused by name (a batch item is never
    forwarded as bytes, so it would be dropped)."""
    for name in FORWARDED:
        if name in body:
            raise InvalidRequestError(
                f"{name} cannot be honoured in a batch item; leave it out", param=name
            )
    present = {k: body[k] for k in SEMANTIC_FIELDS if k in body}
    if not present:
        return GenerationParams()
    checked = validate(ChatBody, {"model": "batch", "messages": body["messages"], **present})
    return checked.params()


def _is_number(value: Any, kind: type) -> bool:
    """`kind` (int, or float which also takes an int), never a bool."""
    allowed = (int, float) if kind is float else (kind,)
    return isinstance(value, allowed) and not isinstance(value, bool)


class ModelProcessor:
    """A configured model, a router (`auto`, `router-...`) or a cascade (`cascade-<name>`)."""

    def __init__(
        self,
        registry: Registry,
        model: str,
        max_tokens: int | None = 256,
        ledger: RowSink | None = None,
    ) -> None:
        self.registry = registry
        self.target = resolve(model, registry)
        self.max_tokens = max_tokens
        self.ledger = ledger
        name = self.target.entry.name if isinstance(self.target, ModelTarget) else model
        self.job = {"kind": "model", "model": name, "max_tokens": max_tokens}

    async def process(self, data: dict[str, Any]) -> Processed:
        request = chat_of(data, self.max_tokens)
        return await recorded(
            self.ledger, self.registry, self.target.name, lambda log: self._answer(request, log)
        )

    async def _answer(self, request: ChatRequest, log: HopLog) -> Processed:
        answer = await self.target.generate(request, log=log)
        output: dict[str, Any] = {"output": answer.text}
        if isinstance(self.target, CascadeTarget):
            output["escalations"] = answer.escalations
        else:
            output["finish_reason"] = answer.generation.finish_reason
        if answer.generation.tool_calls:
            output["tool_calls"] = [call.to_openai() for call in answer.generation.tool_calls]
        return Processed(output, answer.usage, answer.cost_usd, answer.model)


class TaskProcessor:
    """A task on a model or router (`Task.run`), or up a cascade's ladder (`cascade-<name>`)."""

    def __init__(
        self, registry: Registry, task: Any, model: str | None, ledger: RowSink | None = None
    ) -> None:
        self.registry = registry
        self.task = task
        self.model = model
        self.ledger = ledger
        target = resolve(model, registry) if model else None
        self.cascade = target if isinstance(target, CascadeTarget) else None
        self.job = {"kind": "task", "task": task.name, "model": model}

    async def process(self, data: dict[str, Any]) -> Processed:
        text = input_text(data)
        requested = self.model or self.task.spec.model or "default"
        return await recorded(
            self.ledger, self.registry, requested, lambda log: self._run(text, log)
        )

    async def _run(self, text: str, log: HopLog) -> Processed:
        if self.cascade is not None:
            found = await run_on_cascade(self.task, text, self.cascade, log=log)
            key = {"classify": "label", "extract": "data"}.get(self.task.spec.kind, "text")
            output = {"kind": self.task.spec.kind, key: found.output}
            return Processed(output, found.usage, found.cost_usd, found.model)
        result = await self.task.run(text, model=self.model, registry=self.registry)
        output = result.to_dict()
        output.pop("task", None)
        return Processed(output, result.usage, result.cost_usd, result.model)


class PipelineProcessor:
    def __init__(self, registry: Registry, pipeline: Any, ledger: RowSink | None = None) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.ledger = ledger
        self.job = {"kind": "pipeline", "pipeline": pipeline.name}

    async def process(self, data: dict[str, Any]) -> Processed:
        text = input_text(data)
        result = await self.pipeline.run(text, registry=self.registry, ledger=self.ledger)
        output = result.to_dict()
        output.pop("pipeline", None)
        models = [s.model for s in result.steps.values() if s.model]
        return Processed(output, result.usage, result.cost_usd, ",".join(dict.fromkeys(models)))
