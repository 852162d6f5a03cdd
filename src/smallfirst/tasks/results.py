"""Typed task results: what `Task.run` returns, the CLI prints and the gateway sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from smallfirst.tasks.retrieval import Chunk
from smallfirst.types import Usage


@dataclass(kw_only=True, slots=True)
class TaskResult:
    task: str
    kind: str
    model: str
    """The configured model that produced the answer (after any router decision)."""
    raw: str
    """The model's text as written (after a repair, the repaired one)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens of every call made for this input, repair included."""
    latency_s: float = 0.0
    attempts: int = 1
    """2 when the first output was invalid and the repair turn fixed it."""
    router: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"task": self.task, "kind": self.kind, **self._value()}
        body.update(
            model=self.model,
            router=self.router,
            attempts=self.attempts,
            usage={
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
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
