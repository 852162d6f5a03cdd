"""What a batch does to one item: call a model, run a task, or run a pipeline.

Given a ledger, each item is recorded as the gateway records a request: a model or task item by
`ledger_rows.recorded` (a request row and a hop row per retry, fallback, rung and check), a
pipeline item by the pipeline itself (its request row, a hop row per step and per retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from smallfirst.batch.ledger_rows import recorded
from smallfirst.errors import InvalidRequestError
from smallfirst.ledger.sink import RowSink
from smallfirst.models.registry import Registry
from smallfirst.routing.hops import HopLog
from smallfirst.target import CascadeTarget, ModelTarget, resolve
from smallfirst.tasks.on_cascade import run_on_cascade
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage
from smallfirst.wire.fields import refuse_unforwardable
from smallfirst.wire.render import logprobs_json
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


ITEM_IDS = ("custom_id", "id")
"""The batch's own keys beside an item's chat fields (`items._item_id`)."""


def chat_of(data: dict[str, Any], model: str, max_tokens: int | None) -> ChatRequest:
    """An item as a chat request: an OpenAI Batch line's body, `messages`, or a text field.
    `model`: the job's, for a chat body that names none; `max_tokens`: the job's limit, for
    an item that sets none."""
    body = inner if isinstance(inner := data.get("body"), dict) else data
    if isinstance(body.get("messages"), list):
        fields = body if body is not data else {k: v for k, v in data.items() if k not in ITEM_IDS}
        return _chat_body(fields, model, max_tokens)
    messages = [Message("user", input_text(body))]
    wanted = body.get("max_tokens", max_tokens)
    temperature = body.get("temperature")
    if wanted is not None and not (_is_number(wanted, int) and wanted >= 1):
        raise InvalidRequestError(f"max_tokens must be a positive integer, not {wanted!r}")
    if temperature is not None and not (_is_number(temperature, float) and 0 <= temperature <= 2):
        raise InvalidRequestError(f"temperature must be a number from 0 to 2, not {temperature!r}")
    return ChatRequest(messages, GenerationParams(max_tokens=wanted, temperature=temperature))


def _chat_body(fields: dict[str, Any], model: str, max_tokens: int | None) -> ChatRequest:
    """A chat body validated and audited as the gateway's `/chat/completions` does it: every
    honoured field is honoured, metadata kept out of the answer, and a field only pass-through
    could honour, or an unknown one (at the top or inside the messages), refused by its path:
    a batch item is never forwarded as bytes, so it would be dropped."""
    body = validate(ChatBody, {"model": model, **fields})
    refuse_unforwardable(fields, None, caller="smallfirst batch")
    params = body.params()
    if params.max_tokens is None:
        params.max_tokens = max_tokens
    return ChatRequest(body.to_messages(), params)


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
        request = chat_of(data, self.target.name, self.max_tokens)
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
        if request.params.logprobs:
            output["logprobs"] = logprobs_json(answer.generation.logprobs)
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
