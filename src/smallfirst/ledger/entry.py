"""One ledger row: what a request (or one hop of it) asked for, got, cost and took.

A plain dataclass built on the hot path; the writer turns it into a row with `as_row()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

EntryKind = Literal["request", "hop"]


@dataclass(slots=True)
class LedgerEntry:
    """A `request` row is what the client saw (totals over all hops); a `hop` row is one
    model call or check inside it, under the same `request_id` with `hop` = 1, 2, ...
    Spend is summed over `request` rows only, so hops never count twice."""

    request_id: str
    kind: EntryKind = "request"
    hop: int = 0
    """0 for the request row; 1.. for the hops of a multi-step request, in order."""
    step: str | None = None
    """What a hop did: `answer`, `check`, `escalate`, `fallback`, ... (None on request rows)."""
    outcome: str | None = None
    """One word for grouping hops: `ok`, `passed`, `failed`, `error`, ..."""
    ts: float = field(default_factory=time.time)
    """Unix seconds (UTC) when the request arrived."""
    endpoint: str = "chat"
    """`chat`, `completions` or `embeddings`."""
    key_id: str | None = None
    key_name: str | None = None
    requested_model: str | None = None
    task: str | None = None
    """The task the request belongs to (smallfirst/learning/tasks.py), when learning is on."""
    model: str | None = None
    """The configured model that served it (None when it failed before one was chosen)."""
    tier: str | None = None
    router: str | None = None
    route_reason: str | None = None
    route_score: float | None = None
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Of `input_tokens`, read from the provider's prompt cache (priced at its cached rate)."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, written to the provider's prompt cache."""
    cost_usd: float = 0.0
    baseline_model: str | None = None
    baseline_cost_usd: float = 0.0
    """What `baseline_model` would have cost for the same tokens: savings = this - cost_usd."""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    status: int = 200
    error: str | None = None
    prompt: str | None = None
    response: str | None = None

    @classmethod
    def for_hop(cls, parent: LedgerEntry, hop: int, step: str, **fields: Any) -> LedgerEntry:
        """A hop row under `parent`'s request id, sharing its key, endpoint and route."""
        base = {
            "request_id": parent.request_id,
            "endpoint": parent.endpoint,
            "key_id": parent.key_id,
            "key_name": parent.key_name,
            "requested_model": parent.requested_model,
            "task": parent.task,
            "router": parent.router,
            "stream": parent.stream,
            "baseline_model": parent.baseline_model,
        }
        return cls(kind="hop", hop=hop, step=step, **{**base, **fields})

    def as_row(self) -> dict[str, Any]:
        """The row to insert. Every field is a plain value, so no `dataclasses.asdict`: its
        recursive deep copy cost the writer ~10x more per row than the insert's own Python."""
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = tuple(f.name for f in fields(LedgerEntry))
