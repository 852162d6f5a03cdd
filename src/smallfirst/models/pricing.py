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
    cached_input_per_mtok: float | None = None
    """Prompt tokens read from the provider's cache; None: the input rate."""
    cache_write_per_mtok: float | None = None
    """Prompt tokens written to the provider's cache; None: the input rate."""

    def cost(self, usage: Usage) -> float:
        """Cached and cache-written tokens are part of `input_tokens`, each at its own rate
        (counts are checked where they are read, so the rest is never negative)."""
        cached, written = usage.cached_input_tokens, usage.cache_write_tokens
        cached_rate = _or(self.cached_input_per_mtok, self.input_per_mtok)
        write_rate = _or(self.cache_write_per_mtok, self.input_per_mtok)
        return (
            (usage.input_tokens - cached - written) * self.input_per_mtok
            + cached * cached_rate
            + written * write_rate
            + usage.output_tokens * self.output_per_mtok
        ) / MILLION


def _or(rate: float | None, default: float) -> float:
    return default if rate is None else rate


def price_of(model: ModelConfig, measured_tokens_per_s: float | None = None) -> ModelPrice:
    if model.price is not None:
        price = model.price
        return ModelPrice(
            price.input, price.output, "config", price.cached_input, price.cache_write
        )
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
    """Per-Mtok prices (input, output, cache read, cache write) from genai-prices' offline
    snapshot, or None if it does not know the model."""
    try:
        from genai_prices import Usage as PriceUsage
        from genai_prices import calc_price

        def per_mtok(**tokens: int) -> float:
            return float(calc_price(PriceUsage(**tokens), model_ref).total_price)

        # genai-prices counts cache reads and writes inside input_tokens, as `Usage` does.
        return ModelPrice(
            per_mtok(input_tokens=MILLION),
            per_mtok(output_tokens=MILLION),
            "genai-prices",
            per_mtok(input_tokens=MILLION, cache_read_tokens=MILLION),
            per_mtok(input_tokens=MILLION, cache_write_tokens=MILLION),
        )
    except LookupError:
        return None
    except Exception:  # genai-prices raises its own errors for unmatched models
        return None
