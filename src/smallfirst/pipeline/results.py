"""What a pipeline run returns: per step model, output, tokens, $ and latency, plus totals."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from smallfirst.types import Usage

StepStatus = Literal["ok", "skipped", "failed"]


@dataclass(slots=True)
class StepResult:
    name: str
    status: StepStatus
    model: str | None = None
    tier: str | None = None
    output: Any = None
    """A task's result as a dict (label, data or text), or a prompt step's text."""
    text: str = ""
    """The output as text, which later steps' templates receive."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    reason: str | None = None
    """Why it was skipped or failed, or why it escalated."""
    escalated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "model": self.model,
            "tier": self.tier,
            "output": self.output,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_s": round(self.latency_s, 4),
            "reason": self.reason,
            "escalated": self.escalated,
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
