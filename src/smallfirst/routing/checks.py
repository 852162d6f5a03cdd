"""Checks on a rung's answer: is it good enough to keep, or should the request climb?

Each check turns an answer into a score in [0, 1] and passes when the score reaches its
threshold, so one calibration routine (`routing/thresholds.py`) can set every threshold from
labelled data. Checks that need extra calls (agreement samples, a judge) make them through the
same failover caller as the answers, and their tokens are charged to the check's hop.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import jsonschema

from smallfirst.config import CheckConfig
from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.routing.fallback import AnyRequest, Deadline, FailoverCaller
from smallfirst.routing.hops import HopLog
from smallfirst.types import ChatRequest, Generation, GenerationParams, Message, Usage

DEFAULT_THRESHOLDS = {"logprob": 0.7, "agreement": 0.6, "scorer": 0.5, "judge": 0.5}
REFUSAL = re.compile(
    r"^\s*(i'?m sorry|sorry,|i (cannot|can't|can ?not|won't|am unable|'m unable)|"
    r"as an ai\b|i do not feel comfortable)",
    re.IGNORECASE,
)


@dataclass(slots=True)
class CheckContext:
    """Everything a check may look at, plus the means to make (and pay for) extra calls."""

    request: AnyRequest
    generation: Generation
    model: str
    caller: FailoverCaller
    log: HopLog
    deadline: Deadline
    rung: int | None = None
    local_only: bool = False
    """The request holds personal data: extra calls go to `local` models only."""


@dataclass(slots=True)
class CheckOutcome:
    score: float | None
    """None when the check could not be computed (no logprobs, the judge failed...)."""
    detail: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


class Check(Protocol):
    name: str
    threshold: float

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome: ...


def passes(check: Check, outcome: CheckOutcome) -> bool:
    return outcome.score is not None and outcome.score >= check.threshold


def prompt_text(request: AnyRequest) -> str:
    """The user's question: the prompt, or the last user message of a chat."""
    if isinstance(request, ChatRequest):
        users = [m.content for m in request.messages if m.role == "user"]
        return users[-1] if users else (request.messages[-1].content if request.messages else "")
    return request.prompt


def normalize_answer(text: str) -> str:
    """Answers compare equal when they differ only in case, spacing or trailing punctuation;
    JSON answers compare by value."""
    stripped = text.strip()
    try:
        return json.dumps(json.loads(stripped), sort_keys=True)
    except ValueError:
        return " ".join(stripped.lower().split()).rstrip(".!")


class LogprobCheck:
    """Confidence = geometric mean of the answer's token probabilities."""

    name = "logprob"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome:
        logprobs = ctx.generation.logprobs
        if not logprobs:
            return CheckOutcome(None, "the model returned no token logprobs")
        confidence = math.exp(sum(t.logprob for t in logprobs) / len(logprobs))
        return CheckOutcome(confidence, f"mean token probability {confidence:.3f}")


class ConstraintCheck:
    """Non-empty, no refusal, a label of the set, JSON valid for the schema: 1.0 or 0.0."""

    name = "constraint"

    def __init__(
        self, labels: list[str] | None, schema: dict[str, Any] | None, allow_refusal: bool
    ) -> None:
        self.threshold = 1.0
        self.labels = {normalize_answer(label): label for label in labels or []}
        self.schema = schema
        self.allow_refusal = allow_refusal

    def problem(self, text: str, request_schema: dict[str, Any] | None) -> str | None:
        if not text.strip():
            return "empty answer"
        if not self.allow_refusal and REFUSAL.match(text):
            return "the answer is a refusal"
        if self.labels and normalize_answer(text) not in self.labels:
            return f"{text.strip()[:40]!r} is not one of the labels"
        schema = self.schema or request_schema
        if schema is not None:
            try:
                jsonschema.validate(json.loads(text), schema)
            except ValueError:
                return "the answer is not valid JSON"
            except jsonschema.ValidationError as exc:
                return f"the JSON does not match the schema: {exc.message}"
        return None

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome:
        problem = self.problem(ctx.generation.text, ctx.request.params.json_schema)
        if problem:
            return CheckOutcome(0.0, problem)
        return CheckOutcome(1.0, "answer meets the output constraints")


async def side_call(ctx: CheckContext, model: str, request: AnyRequest) -> Generation | None:
    """An extra call on behalf of a check; its failures join the request's hops. With
    personal data in the request a model not declared `local` is never called (None)."""
    if ctx.local_only and not ctx.caller.registry.get(model).capabilities.local:
        return None
    scratch = HopLog(ctx.log.request_id)
    try:
        return await ctx.caller.generate(request, [model], scratch, ctx.deadline, ctx.rung)
    except SmallfirstError:
        return None
    finally:
        for hop in scratch.of_kind("failure"):
            ctx.log.add("failure", **_hop_fields(hop, "index", "request_id", "kind", "at"))


def _hop_fields(hop: Any, *skip: str) -> dict[str, Any]:
    return {k: v for k, v in hop.as_dict().items() if k not in skip}


class AgreementCheck:
    """Draw more answers from the same model; score = share that agree with the first."""

    name = "agreement"

    def __init__(self, threshold: float, samples: int, temperature: float) -> None:
        self.threshold = threshold
        self.samples = samples
        self.temperature = temperature

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome:
        first = normalize_answer(ctx.generation.text)
        base = ctx.request.params
        seed = base.seed if base.seed is not None else 0
        requests = [
            replace(
                ctx.request,
                params=replace(base, temperature=self.temperature, seed=seed + i, logprobs=False),
            )
            for i in range(1, self.samples)
        ]
        extra = await asyncio.gather(*(side_call(ctx, ctx.model, r) for r in requests))
        answers = [g for g in extra if g is not None]
        usage, cost = _spent(ctx, ctx.model, answers)
        if not answers:
            return CheckOutcome(None, "no extra sample could be drawn", usage, cost)
        agree = 1 + sum(normalize_answer(g.text) == first for g in answers)
        share = agree / (len(answers) + 1)
        return CheckOutcome(share, f"{agree} of {len(answers) + 1} samples agree", usage, cost)


def _spent(ctx: CheckContext, model: str, generations: list[Generation]) -> tuple[Usage, float]:
    usage = Usage(
        sum(g.usage.input_tokens for g in generations),
        sum(g.usage.output_tokens for g in generations),
    )
    return usage, ctx.caller.registry.get(model).price.cost(usage)


JUDGE_PROMPT = (
    "You check answers. Question:\n{question}\n\nProposed answer:\n{answer}\n\n"
    "Is the proposed answer correct? Reply with one word: yes or no."
)


class JudgeCheck:
    """Ask a (larger) model whether the answer is right; score = its P(yes)."""

    name = "judge"

    def __init__(self, threshold: float, model: str) -> None:
        self.threshold = threshold
        self.model = model

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome:
        question = JUDGE_PROMPT.format(
            question=prompt_text(ctx.request), answer=ctx.generation.text
        )
        request = ChatRequest(
            [Message("user", question)],
            GenerationParams(max_tokens=3, temperature=0.0, logprobs=True, top_logprobs=5),
        )
        verdict = await side_call(ctx, self.model, request)
        if verdict is None:
            return CheckOutcome(None, f"the judge {self.model} did not answer")
        usage, cost = _spent(ctx, self.model, [verdict])
        p_yes = judge_yes_probability(verdict)
        return CheckOutcome(p_yes, f"judge {self.model}: P(yes) {p_yes:.2f}", usage, cost)


def judge_yes_probability(verdict: Generation) -> float:
    """From the first token's top logprobs when given, else from the text itself."""
    first = verdict.logprobs[0] if verdict.logprobs else None
    if first is not None and first.top:
        yes = sum(math.exp(v) for k, v in first.top.items() if k.strip().lower() == "yes")
        no = sum(math.exp(v) for k, v in first.top.items() if k.strip().lower() == "no")
        if yes + no > 0:
            return yes / (yes + no)
    return 1.0 if verdict.text.strip().lower().startswith("yes") else 0.0


class ScorerCheck:
    """A trained P(correct) for (prompt, answer) on MiniLM embeddings."""

    name = "scorer"

    def __init__(self, threshold: float, path: str) -> None:
        self.threshold = threshold
        self.path = path

    async def evaluate(self, ctx: CheckContext) -> CheckOutcome:
        from smallfirst.routing.answer_scorer import load_scorer

        scorer = await asyncio.to_thread(load_scorer, self.path)
        prompt, answer = prompt_text(ctx.request), ctx.generation.text
        probability = await asyncio.to_thread(scorer.score_one, prompt, answer)
        return CheckOutcome(probability, f"scorer P(correct) {probability:.3f}")


def build_check(config: CheckConfig, registry: Registry) -> Check:
    threshold = (
        config.threshold if config.threshold is not None else DEFAULT_THRESHOLDS.get(config.kind)
    )
    if config.kind == "logprob":
        return LogprobCheck(threshold or 0.0)
    if config.kind == "agreement":
        return AgreementCheck(threshold or 0.0, config.samples, config.temperature)
    if config.kind == "constraint":
        return ConstraintCheck(config.labels, config.json_schema, config.allow_refusal)
    if config.kind == "scorer":
        return ScorerCheck(threshold or 0.0, config.path or "")
    judge = resolve_model(registry, config.model or "")
    return JudgeCheck(threshold or 0.0, judge)


def resolve_model(registry: Registry, ref: str) -> str:
    """A model name as is; a tier name -> the cheapest model of that tier."""
    if ref in registry.entries:
        return ref
    for entry in registry.by_tier():
        if entry.tier == ref:
            return entry.name
    return registry.get(ref).name
