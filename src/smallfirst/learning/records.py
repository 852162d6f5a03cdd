"""What learning stores: evidence about a task, client feedback, and a task's serving policy.

Plain dataclasses shared by every part of the loop (smallfirst/learning/__init__.py has the
map): the gateway writes evidence and feedback, the learner reads them and writes policies,
and every replica serves `auto` by the current policy of each task.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EvidenceSource = Literal["served", "shadow", "audit", "cascade", "feedback"]
"""`served`: served by the large model, nothing compared (its answer teaches students and
example banks); `shadow`: served large, small asked too; `audit`: served below large, large
asked too;
`cascade`: an escalated cascade request (small's answer failed a check, large answered);
`feedback`: a client's verdict or right answer (outranks the others)."""

OutputKind = Literal["label", "json", "tool_calls", "text"]
"""How a task's answers compare: labels exactly, JSON and tool calls field by field, free
text by a judge model."""

ServeKind = Literal["large", "small", "student"]
"""What a policy answers with first: the large (reference) model, the small model, or a
tier-0 student trained on the large model's answers (which defers to the next rung)."""


@dataclass(slots=True)
class Evidence:
    """One comparison of a cheaper answer with the reference answer for one request."""

    request_id: str
    task: str
    source: EvidenceSource
    output_kind: OutputKind
    input: str | None
    """The prompt's variable part (what a student or example bank learns from)."""
    small_model: str | None
    small_answer: str | None
    large_model: str | None
    large_answer: str | None
    """The reference: the large model's answer, or the right answer a client gave."""
    agree: bool | None
    """Was the cheaper answer as good as the reference? None: not judged (yet)."""
    score: float | None = None
    """A graded verdict in [0, 1] where one exists (field-level F1, a judge's or client's
    score)."""
    cost_usd: float = 0.0
    """What obtaining this evidence cost (the shadow or audit call and any judge call)."""
    detail: str | None = None
    """Why, in words (the differing field, the judge's reason, the error of a failed call)."""
    ts: float = field(default_factory=time.time)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Feedback:
    """`POST /v1/feedback`: a client's verdict on one of its own requests."""

    request_id: str
    key_id: str | None
    score: float | None = None
    correct: bool | None = None
    answer: str | None = None
    """The right answer, when the client knows it."""
    ts: float = field(default_factory=time.time)

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Estimate:
    """A policy's quality on held-out evidence: agreement with the reference, with a
    one-sided lower bound at the configured confidence, over `n` comparisons."""

    n: int
    agreement: float
    lower: float
    upper: float


@dataclass(slots=True)
class Policy:
    """How `auto` serves one task, as of one version. Stored whole, as JSON, per version."""

    task: str
    version: int
    serve: ServeKind
    rungs: list[str]
    """Configured model names tried in order after the first answer defers or fails checks;
    for `serve: large`, just the large model."""
    reason: str
    """Why this policy, in words (shown in `learn history` and in each routing reason)."""
    target: float
    estimate: Estimate | None = None
    output_kind: OutputKind | None = None
    shadow_rate: float = 0.0
    audit_rate: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)
    """Files the policy serves from: `student` (a TinyClassifier), `bank` (example bank)."""
    evidence_n: int = 0
    created_at: float = field(default_factory=time.time)
    rolled_back_from: int | None = None
    share_below_large: float = 0.0
    """Share of the held-out traffic this policy serves below the large model."""
    evidence_since: float | None = None
    """Evidence older than this is not learnt from (set on a demotion: the traffic changed)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        estimate = data.get("estimate")
        values = {**data, "estimate": Estimate(**estimate) if estimate else None}
        return cls(**values)
