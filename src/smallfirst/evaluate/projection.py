"""What a workload would cost on each configured model: "1 million requests of 1K tokens".

Cloud models are priced per token (genai-prices or the config); self-hosted ones from $/hour
and throughput, which also gives the compute hours the workload needs. The price and the hours
use the same tokens/s, so they always agree: cost = hours x $/hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smallfirst.models.registry import ModelEntry, Registry, load_measured_throughput
from smallfirst.types import Usage


@dataclass(frozen=True, slots=True)
class Workload:
    requests: float
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> float:
        return self.requests * (self.input_tokens + self.output_tokens)


@dataclass(frozen=True, slots=True)
class Projection:
    model: str
    tier: str
    price_source: str
    usd_per_request: float
    usd_total: float
    tokens_per_second: float | None
    """Self-hosted throughput (configured or measured); None for per-token cloud prices."""
    hours: float | None
    """Compute hours the workload needs at that throughput, on one replica."""
    hourly_usd: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tier": self.tier,
            "price_source": self.price_source,
            "usd_per_request": self.usd_per_request,
            "usd_total": self.usd_total,
            "tokens_per_second": self.tokens_per_second,
            "hours": self.hours,
            "hourly_usd": self.hourly_usd,
        }


def project(
    registry: Registry, workload: Workload, models: Sequence[str] | None = None
) -> list[Projection]:
    """One projection per model (all configured ones by default), cheapest first."""
    entries = [registry.get(name) for name in models] if models else list(registry.entries.values())
    measured = load_measured_throughput()
    rows = [_project(entry, workload, measured.get(entry.name)) for entry in entries]
    return sorted(rows, key=lambda r: (r.usd_total, r.model))


def _project(entry: ModelEntry, workload: Workload, measured: float | None) -> Projection:
    per_request = entry.price.cost(Usage(workload.input_tokens, workload.output_tokens))
    config = entry.config
    self_hosted = config.hourly_usd is not None or entry.capabilities.local
    tps = (config.tokens_per_second or measured) if self_hosted else None
    hours = workload.total_tokens / tps / 3600 if tps else None
    return Projection(
        model=entry.name,
        tier=entry.tier,
        price_source=entry.price.source,
        usd_per_request=per_request,
        usd_total=per_request * workload.requests,
        tokens_per_second=tps,
        hours=hours,
        hourly_usd=config.hourly_usd,
    )
