"""What a pipeline run returns: per step model, output, tokens, $ and latency, plus totals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from smallfirst.tasks.results import Attempt, total_usage
from smallfirst.types import Usage

StepStatus = Literal["ok", "skipped", "failed"]


@dataclass(slots=True)
class StepResult:
    name: str
    status: StepStatus
    model: str | None = None
    """The model that answered (the highest tier, when some pieces escalated)."""
    tier: str | None = None
    output: Any = None
    """A task's result as a dict (label, data or text), or a prompt step's text."""
    text: str = ""
    """The output as text, which later steps' templates receive."""
    tries: list[Attempt] = field(default_factory=list)
    """Every model call group, failed ones included, piece by piece: tokens and $ are theirs."""
    latency_s: float = 0.0
    reason: str | None = None
    """Why it was skipped or failed, or why it escalated."""
    escalated: bool = False
    finish_reason: str | None = None
    """`length` when an answer (of any piece) was cut at the token budget."""

    @property
    def usage(self) -> Usage:
        return total_usage(self.tries)

    @property
    def cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.tries)

    @property
    def kept_small(self) -> bool:
        """Answered without going up a tier (the small-first goal)."""
        return self.status == "ok" and not self.escalated

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "status": self.status,
            "model": self.model,
            "tier": self.tier,
            "output": self.output,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4),
            "reason": self.reason,
            "escalated": self.escalated,
            "finish_reason": self.finish_reason,
            "tries": [t.to_dict() for t in self.tries],
        }


@dataclass(slots=True)
class PipelineResult:
    pipeline: str
    request_id: str
    steps: dict[str, StepResult]
    latency_s: float = 0.0

    @property
    def usage(self) -> Usage:
        return Usage(
            sum(s.usage.input_tokens for s in self.steps.values()),
            sum(s.usage.output_tokens for s in self.steps.values()),
        )

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps.values())

    def to_dict(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "pipeline": self.pipeline,
            "request_id": self.request_id,
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4),
        }


def text_of(result: dict[str, Any]) -> str:
    """A task result as the text a later step reads: the label, the JSON data, or the text."""
    if "label" in result:
        return str(result["label"])
    if "data" in result:
        return json.dumps(result["data"], ensure_ascii=False)
    return str(result.get("text", ""))
