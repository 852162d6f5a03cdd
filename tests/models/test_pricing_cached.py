"""Cached prompt tokens at each model's cached rates: configured, from genai-prices, or the
input price when neither says otherwise."""

from __future__ import annotations

import pytest

from smallfirst.config import ModelConfig, Price
from smallfirst.models.pricing import ModelPrice, lookup_price, price_of
from smallfirst.types import Usage


def test_each_share_of_the_prompt_at_its_own_rate() -> None:
    price = ModelPrice(2.0, 8.0, "config", cached_input_per_mtok=0.5, cache_write_per_mtok=2.5)
    usage = Usage(input_tokens=1000, output_tokens=10, cached_input_tokens=600,
                  cache_write_tokens=300)  # fmt: skip
    assert price.cost(usage) == pytest.approx((100 * 2.0 + 600 * 0.5 + 300 * 2.5 + 10 * 8.0) / 1e6)


def test_without_cached_rates_cached_tokens_cost_the_input_price() -> None:
    usage = Usage(input_tokens=1000, output_tokens=0, cached_input_tokens=900)
    assert ModelPrice(2.0, 8.0, "config").cost(usage) == pytest.approx(1000 * 2.0 / 1e6)


def test_a_configured_price_carries_its_cached_rates() -> None:
    model = ModelConfig(
        name="m", backend="openai", base_url="http://x/v1",
        price=Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75),
    )  # fmt: skip
    price = price_of(model)
    assert (price.cached_input_per_mtok, price.cache_write_per_mtok) == (0.3, 3.75)


def test_genai_prices_cache_read_and_write_rates() -> None:
    openai_price = lookup_price("gpt-4o-mini")
    assert openai_price is not None and openai_price.cached_input_per_mtok is not None
    assert openai_price.cached_input_per_mtok < openai_price.input_per_mtok
    claude = lookup_price("claude-3-5-haiku-latest")
    assert claude is not None and claude.cache_write_per_mtok is not None
    assert claude.cache_write_per_mtok > claude.input_per_mtok > claude.cached_input_per_mtok
