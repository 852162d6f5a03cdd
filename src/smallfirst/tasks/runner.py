"""One input through one model: prompt, constrained call, check, one repair, typed result.

The repair turn shows the model its invalid output and the reason; a second failure raises
`TaskOutputError` instead of guessing, so a cascade can escalate to a larger model.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from pydantic import BaseModel

from smallfirst.models.base import Provider
from smallfirst.routing.resilience import ResilientProvider
from smallfirst.tasks.examples import Example
from smallfirst.tasks.output import (
    Constraint,
    OutputInvalid,
    TaskOutputError,
    label_choices,
    label_confidence,
    label_schema,
    parse_json_object,
    parse_label,
    strict_schema,
    validate_fields,
)
from smallfirst.tasks.prompts import CUES, LabelFormat, PromptPlan, Style, build_prompt
from smallfirst.tasks.results import (
    AnswerResult,
    ClassifyResult,
    ExtractResult,
    TaskResult,
    TextResult,
)
from smallfirst.tasks.retrieval import Chunk
from smallfirst.tasks.spec import ClassifySpec, ExtractSpec, TaskSpec
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Generation,
    GenerationParams,
    Message,
    Usage,
)

CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(slots=True)
class Call:
    """Everything fixed for one input: the task, the chosen model and what the prompt shows."""

    spec: TaskSpec
    provider: Provider
    model: str
    constraint: Constraint
    style: Style
    examples: list[Example]
    chunks: list[Chunk]
    schema: dict[str, Any] | None = None
    output_model: type[BaseModel] | None = None
    router: str | None = None
    spent: list[tuple[str, Usage]] = field(default_factory=list)
    """(model, tokens) of every upstream answer for this input, repair turn included, named
    by the configured model that wrote it (a fallback, when one answered): each call is priced
    at its own model's rates, answered or not."""


async def run_call(call: Call, text: str) -> TaskResult:
    started = time.perf_counter()
    label_format: LabelFormat = "json" if call.constraint == "response_format" else "bare"
    plan = build_prompt(
        call.spec, text, call.examples, call.style, label_format, call.chunks, call.schema
    )
    if use_scoring(call, plan):
        return await score_labels(call, plan, started)
    params = generation_params(call)
    first = await generate(call.provider, plan, params)
    if isinstance(call.provider, ResilientProvider) and first.model != call.model:
        call.model = first.model  # a fallback answered: the result is its, priced at its rates
    note_spend(call, first)
    usage = Usage(first.usage.input_tokens, first.usage.output_tokens)
    try:
        value, final, attempts = parse_output(call, first), first, 1
    except OutputInvalid as problem:
        if first.finish_reason == "length" and params.max_tokens:
            params = replace(params, max_tokens=params.max_tokens * 2)
        final = await generate(call.provider, repair_plan(call, plan, first.text, problem), params)
        note_spend(call, final)
        usage.input_tokens += final.usage.input_tokens
        usage.output_tokens += final.usage.output_tokens
        try:
            value, attempts = parse_output(call, final), 2
        except OutputInvalid as again:
            raise TaskOutputError(
                f"task {call.spec.name!r}: model {call.model!r} gave invalid output twice "
                f"(first: {problem}; after repair: {again})",
                outputs=[first.text, final.text],
                usage=usage,
            ) from None
    return build_result(call, value, final, usage=usage, attempts=attempts, started=started)


def note_spend(call: Call, generation: Generation) -> None:
    model = generation.model if isinstance(call.provider, ResilientProvider) else call.model
    call.spent.append((model, generation.usage))


def use_scoring(call: Call, plan: PromptPlan) -> bool:
    """`method: score` needs a backend that scores continuations of a plain prompt (the
    embedded model); elsewhere the task falls back to constrained generation."""
    return (
        isinstance(call.spec, ClassifySpec)
        and call.spec.method == "score"
        and plan.style == "completion"
        and hasattr(call.provider, "score_continuations")
    )


async def score_labels(call: Call, plan: PromptPlan, started: float) -> ClassifyResult:
    """Every label's log-likelihood after the prompt; softmax over labels gives the scores.
    No tokens are sampled, so the output is always a valid label."""
    labels = call.spec.label_names  # type: ignore[union-attr]
    logprobs = await call.provider.score_continuations(  # type: ignore[attr-defined]
        plan.prompt, [f" {label}" for label in labels]
    )
    values = np.asarray(logprobs, dtype=np.float64)
    probs = np.exp(values - values.max())
    probs /= probs.sum()
    best = int(probs.argmax())
    return ClassifyResult(
        task=call.spec.name,
        kind="classify",
        model=call.model,
        raw=labels[best],
        latency_s=time.perf_counter() - started,
        router=call.router,
        label=labels[best],
        confidence=float(probs[best]),
        scores={label: float(p) for label, p in zip(labels, probs, strict=True)},
    )


def generation_params(call: Call) -> GenerationParams:
    spec = call.spec
    params = GenerationParams(
        max_tokens=spec.max_tokens or default_max_tokens(spec),
        temperature=spec.temperature,
        seed=0,
    )
    if isinstance(spec, ClassifySpec):
        params.logprobs = True
        if call.constraint == "grammar":
            params.choices = label_choices(spec.label_names)
        elif call.constraint == "response_format":
            params.json_schema = label_schema(spec.label_names)
    elif isinstance(spec, ExtractSpec) and call.schema is not None:
        if call.constraint == "grammar":
            params.json_schema = call.schema
        elif call.constraint == "response_format":
            params.json_schema = strict_schema(call.schema)
    return params


def default_max_tokens(spec: TaskSpec) -> int:
    """Room for the longest legal answer and little more: small models ramble."""
    if isinstance(spec, ClassifySpec):
        return 16 + max(len(name) for name in spec.label_names) // 2
    if isinstance(spec, ExtractSpec):
        return 256
    return 2 * spec.max_words + 16


async def generate(provider: Provider, plan: PromptPlan, params: GenerationParams) -> Generation:
    if plan.style == "completion":
        constrained = params.choices is not None or params.json_schema is not None
        stop = None if constrained else plan.stop
        answer = await provider.complete(CompletionRequest(plan.prompt, replace(params, stop=stop)))
        if stop and answer.finish_reason == "stop" and not answer.text.strip():
            return await answer_on_the_next_line(
                provider, plan.prompt, replace(params, stop=stop), answer
            )
        return answer
    return await provider.chat(ChatRequest(plan.messages, params))


async def answer_on_the_next_line(
    provider: Provider, prompt: str, params: GenerationParams, empty: Generation
) -> Generation:
    """A base model often starts its answer on the line after the cue ("Summary:" then a
    newline), which the one-line stop cuts to nothing. Ask once more with that newline as
    part of the prompt; both calls are billed."""
    again = await provider.complete(CompletionRequest(prompt + "\n", params))
    usage = Usage(
        empty.usage.input_tokens + again.usage.input_tokens,
        empty.usage.output_tokens + again.usage.output_tokens,
        empty.usage.cached_input_tokens + again.usage.cached_input_tokens,
        empty.usage.cache_write_tokens + again.usage.cache_write_tokens,
    )
    return replace(again, usage=usage, latency_s=empty.latency_s + again.latency_s)


def repair_plan(call: Call, plan: PromptPlan, bad: str, problem: OutputInvalid) -> PromptPlan:
    """The same prompt plus the invalid answer and why it is invalid, asking once more."""
    note = f"That answer is not valid: {problem}."
    if plan.style == "completion":
        cue = CUES[call.spec.kind]
        prompt = f"{plan.prompt} {bad.strip()}\n{note}\n{cue}:"
        return PromptPlan("completion", prompt=prompt, stop=plan.stop)
    retry = Message("user", f"{note} Answer again, following the format exactly.")
    return PromptPlan("chat", messages=[*plan.messages, Message("assistant", bad), retry])


def parse_output(call: Call, generation: Generation) -> Any:
    """The checked value, or OutputInvalid saying what is wrong."""
    spec, text = call.spec, generation.text
    if isinstance(spec, ClassifySpec):
        return parse_label(text, spec.label_names)
    if isinstance(spec, ExtractSpec):
        return validate_fields(parse_json_object(text), call.schema or {}, call.output_model)
    if not text.strip():
        raise OutputInvalid("the answer is empty")
    return text.strip()


def build_result(
    call: Call, value: Any, generation: Generation, *, usage: Usage, attempts: int, started: float
) -> TaskResult:
    common: dict[str, Any] = {
        "task": call.spec.name,
        "kind": call.spec.kind,
        "model": call.model,
        "raw": generation.text,
        "usage": usage,
        "latency_s": time.perf_counter() - started,
        "attempts": attempts,
        "router": call.router,
        "finish_reason": generation.finish_reason,
    }
    if call.spec.kind == "classify":
        return ClassifyResult(
            label=value, confidence=label_confidence(generation.logprobs), **common
        )
    if call.spec.kind == "extract":
        return ExtractResult(data=value, **common)
    if call.spec.kind == "answer":
        return AnswerResult(
            text=value, citations=cited(value, call.chunks), passages=call.chunks, **common
        )
    return TextResult(text=value, **common)


def cited(text: str, chunks: list[Chunk]) -> list[Chunk]:
    """Passages referenced as [n], in order of first mention; numbers out of range ignored."""
    seen: list[int] = []
    for match in CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= len(chunks) and number not in seen:
            seen.append(number)
    return [chunks[n - 1] for n in seen]
