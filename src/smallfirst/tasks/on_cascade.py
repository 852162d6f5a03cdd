"""A task run up a cascade's ladder: the task's prompt with no backend-specific constraint
(rungs differ in backend, so the answer is checked after the fact), every hop charged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smallfirst.routing.hops import HopLog
from smallfirst.target import CascadeTarget
from smallfirst.tasks.output import parse_json_object, parse_label, validate_fields
from smallfirst.tasks.prompts import build_prompt
from smallfirst.tasks.retrieval import StaticContext, retrieve
from smallfirst.tasks.runner import default_max_tokens
from smallfirst.tasks.spec import AnswerSpec, ClassifySpec, ExtractSpec
from smallfirst.tasks.task import Task
from smallfirst.types import ChatRequest, GenerationParams, Usage


@dataclass(slots=True)
class CascadeOutput:
    output: Any
    """The label, the validated fields or the text."""
    usage: Usage
    """Every hop's tokens (answers and checks on every rung)."""
    cost_usd: float
    model: str
    """The model whose answer was kept."""
    escalations: int


async def run_on_cascade(
    task: Task,
    text: str,
    target: CascadeTarget,
    context: list[str] | None = None,
    log: HopLog | None = None,
) -> CascadeOutput:
    """Raises `OutputInvalid` when the kept answer is not a valid output of the task.
    `log`: where the ladder's hops go (kept when this raises)."""
    answer = await target.generate(await task_request(task, text, context), log=log)
    usage = Usage(
        sum(h.input_tokens for h in answer.hops), sum(h.output_tokens for h in answer.hops)
    )
    output = parse_task_output(task, answer.text)
    return CascadeOutput(output, usage, answer.cost_usd, answer.model, answer.escalations)


async def task_request(task: Task, text: str, context: list[str] | None) -> ChatRequest:
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
    spec = task.spec
    if isinstance(spec, ClassifySpec):
        return parse_label(text, spec.label_names)
    if isinstance(spec, ExtractSpec):
        return validate_fields(parse_json_object(text), task.schema or {}, task.output_model)
    return text.strip()
