"""Typed task results: what `Task.run` returns, the CLI prints and the gateway sends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from smallfirst.tasks.retrieval import Chunk
from smallfirst.types import Usage

if TYPE_CHECKING:
    from smallfirst.models.registry import ModelEntry


@dataclass(kw_only=True, slots=True)
class Attempt:
    """One model's go at an input (its first answer and any repair turn), kept whether it
    succeeded or not: a failed attempt still spent tokens and money."""

    model: str
    tier: str
    outcome: str
    """`ok`, or `failed` (invalid or empty after the repair turn)."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    reason: str | None = None
    """Why it failed."""
    finish_reason: str | None = None
    """`length` when the answer was cut at the token budget (and closed, for JSON)."""
    piece: int | None = None
    """Which piece of a chunked pipeline input it was (0-based); None for a whole input."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "piece": self.piece,
            "model": self.model,
            "tier": self.tier,
            "outcome": self.outcome,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4),
            "reason": self.reason,
            "finish_reason": self.finish_reason,
        }


def attempt_on(
    entry: ModelEntry,
    usage: Usage,
    started: float,
    outcome: str,
    reason: str | None = None,
    finish_reason: str | None = None,
    cost_usd: float | None = None,
) -> Attempt:
    """An attempt on a configured model, timed from `started` (a `time.perf_counter()`
    reading) and priced at that model's rates unless `cost_usd` says what it cost."""
    return Attempt(
        model=entry.name,
        tier=entry.tier,
        outcome=outcome,
        usage=usage,
        cost_usd=entry.price.cost(usage) if cost_usd is None else cost_usd,
        latency_s=time.perf_counter() - started,
        reason=reason,
        finish_reason=finish_reason,
    )


def total_usage(attempts: list[Attempt]) -> Usage:
    return Usage(
        sum(a.usage.input_tokens for a in attempts), sum(a.usage.output_tokens for a in attempts)
    )


@dataclass(kw_only=True, slots=True)
class TaskResult:
    task: str
    kind: str
    model: str
    """The configured model that produced the answer (after any router decision)."""
    raw: str
    """The model's text as written (after a repair, the repaired one)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens of every call made for this input, repairs and failed models included."""
    latency_s: float = 0.0
    attempts: int = 1
    """2 when the first output was invalid and the repair turn fixed it."""
    router: str | None = None
    finish_reason: str = "stop"
    """`length` when the answer was cut at the token budget (a JSON answer is still closed)."""
    tries: list[Attempt] = field(default_factory=list)
    """Every model that tried, in order: failed ones first, the one that answered last."""

    @property
    def cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.tries)

    @property
    def escalated(self) -> bool:
        """True when a model failed and a higher tier answered instead."""
        return len(self.tries) > 1

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task": self.task, "kind": self.kind, **self._value()}
        body.update(
            model=self.model,
            router=self.router,
            attempts=self.attempts,
            finish_reason=self.finish_reason,
            usage={
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            cost_usd=self.cost_usd,
            tries=[t.to_dict() for t in self.tries],
            latency_s=round(self.latency_s, 4),
        )
        return body

    def _value(self) -> dict[str, Any]:
        return {"raw": self.raw}


@dataclass(kw_only=True, slots=True)
class ClassifyResult(TaskResult):
    label: str
    confidence: float | None = None
    """From token log-probabilities; None when the backend returned none."""
    scores: dict[str, float] | None = None
    """Per-label probabilities (the `score` method only)."""

    def _value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"label": self.label, "confidence": self.confidence}
        if self.scores is not None:
            value["scores"] = self.scores
        return value


@dataclass(kw_only=True, slots=True)
class ExtractResult(TaskResult):
    data: Any
    """An instance of the task's pydantic model, or a dict valid against its JSON schema."""

    def _value(self) -> dict[str, Any]:
        data = self.data.model_dump(mode="json") if isinstance(self.data, BaseModel) else self.data
        return {"data": data}


@dataclass(kw_only=True, slots=True)
class TextResult(TaskResult):
    text: str

    def _value(self) -> dict[str, Any]:
        return {"text": self.text}


@dataclass(kw_only=True, slots=True)
class AnswerResult(TaskResult):
    text: str
    citations: list[Chunk] = field(default_factory=list)
    """The passages the answer cites by number, in order of first mention."""
    passages: list[Chunk] = field(default_factory=list)
    """Every passage the prompt showed; citation [n] is `passages[n - 1]`."""

    def _value(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": [{"text": c.text, "source": c.source} for c in self.citations],
        }
