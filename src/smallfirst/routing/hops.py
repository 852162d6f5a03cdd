"""What happened to one request on its way up the ladder, hop by hop.

A hop is plain data so the ledger can store it, the CLI can print it and a test can read the
whole story of a request (route, answers, checks, failures, escalations) in order.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from smallfirst.types import Generation, Usage

HopKind = Literal["route", "answer", "check", "failure", "fallback", "escalate", "accept"]
HOP_KINDS: tuple[HopKind, ...] = (
    "route",
    "answer",
    "check",
    "failure",
    "fallback",
    "escalate",
    "accept",
)


def new_request_id() -> str:
    return "req-" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class Hop:
    """One step. `cost_usd` counts only the tokens this step itself spent."""

    request_id: str
    index: int
    kind: HopKind
    model: str | None = None
    tier: str | None = None
    rung: int | None = None
    """Position on the cascade's ladder (0 = first rung); None outside a cascade."""
    outcome: str = ""
    """`ok`, `passed`, `failed`, `error`, `skipped`, `kept`, ... (one word, for grouping)."""
    detail: str = ""
    """Why, in words a person can read in the ledger."""
    check: str | None = None
    score: float | None = None
    threshold: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error_status: int | None = None
    error_type: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class HopLog:
    """Collects the hops of one request; numbering and the request id are kept in one place."""

    def __init__(self, request_id: str | None = None) -> None:
        self.request_id = request_id or new_request_id()
        self.hops: list[Hop] = []

    def add(self, kind: HopKind, **fields: Any) -> Hop:
        hop = Hop(request_id=self.request_id, index=len(self.hops), kind=kind, **fields)
        self.hops.append(hop)
        return hop

    def add_usage(self, kind: HopKind, usage: Usage, cost_usd: float, **fields: Any) -> Hop:
        return self.add(
            kind,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost_usd,
            **fields,
        )

    def of_kind(self, kind: HopKind) -> list[Hop]:
        return [hop for hop in self.hops if hop.kind == kind]


@dataclass(slots=True)
class CascadeResult:
    """The answer a caller gets back, with the full story of how it was reached."""

    generation: Generation
    request_id: str
    cascade: str | None
    """The cascade's name; None for a single-model call with fallbacks."""
    hops: list[Hop]
    verified: bool
    """True when the returned answer passed its checks (or came from the last rung)."""

    @property
    def model(self) -> str:
        return self.generation.model

    @property
    def cost_usd(self) -> float:
        return sum(hop.cost_usd for hop in self.hops)

    @property
    def escalations(self) -> int:
        return sum(1 for hop in self.hops if hop.kind == "escalate")

    @property
    def escalation_cost_usd(self) -> float:
        """What the rungs above the first answering one cost (answers and checks there)."""
        answered = [h.rung for h in self.hops if h.kind == "answer" and h.rung is not None]
        if not answered:
            return 0.0
        first = min(answered)
        return sum(h.cost_usd for h in self.hops if h.rung is not None and h.rung > first)
