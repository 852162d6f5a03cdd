"""What a model costs per million tokens, and where that number came from."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from smallfirst.config import ModelConfig
from smallfirst.models.capabilities import capabilities_of
from smallfirst.types import Usage

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float
    source: str
    """`config`, `genai-prices`, `hourly` ($/hour / tokens/s), `local` (free) or `unknown`."""

    def cost(self, usage: Usage) -> float:
        return (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        ) / MILLION


def price_of(model: ModelConfig, measured_tokens_per_s: float | None = None) -> ModelPrice:
    if model.price is not None:
        return ModelPrice(model.price.input, model.price.output, "config")
    if model.hourly_usd is not None:
        tps = model.tokens_per_second or measured_tokens_per_s
        if tps:
            per_mtok = model.hourly_usd / (tps * 3600) * MILLION
            return ModelPrice(per_mtok, per_mtok, "hourly")
        return ModelPrice(0.0, 0.0, "unknown")
    if capabilities_of(model).local:  # self-hosted with no $/hour given: free
        return ModelPrice(0.0, 0.0, "local")
    looked_up = lookup_price(model.upstream_model or model.name)
    return looked_up or ModelPrice(0.0, 0.0, "unknown")


@lru_cache(maxsize=256)
def lookup_price(model_ref: str) -> ModelPrice | None:
    """Per-Mtok price from genai-prices' offline snapshot, or None if it does not know the model."""
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        input_price = calc_price(PriceUsage(input_tokens=MILLION, output_tokens=0), model_ref)
        output_price = calc_price(PriceUsage(input_tokens=0, output_tokens=MILLION), model_ref)
    except LookupError:
        return None
    except Exception:  # genai-prices raises its own errors for unmatched models
        return None
    return ModelPrice(
        float(input_price.total_price), float(output_price.total_price), "genai-prices"
    )
