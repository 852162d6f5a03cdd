"""Cost projection: per-token cloud prices, and $/hour with throughput for self-hosted models."""

from __future__ import annotations

import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.errors import ModelNotFoundError
from smallfirst.evaluate.projection import Workload, project
from smallfirst.models.registry import Registry, save_measured_throughput


def registry() -> Registry:
    return Registry(
        Config(
            models=[
                ModelConfig(
                    name="cloud",
                    backend="openai",
                    base_url="http://127.0.0.1:9/v1",
                    tier="large",
                    price=Price(input=2.5, output=10.0),
                ),
                ModelConfig(
                    name="gpu",
                    backend="openai",
                    base_url="http://127.0.0.1:9/v1",
                    hourly_usd=2.0,
                    tokens_per_second=500.0,
                ),
                ModelConfig(name="local", backend="llamacpp"),
            ]
        )
    )


def test_million_requests_of_1k_tokens():
    rows = {r.model: r for r in project(registry(), Workload(1e6, 800, 200))}
    cloud = rows["cloud"]
    assert cloud.usd_per_request == pytest.approx((800 * 2.5 + 200 * 10.0) / 1e6)
    assert cloud.usd_total == pytest.approx(4000.0)
    assert cloud.hours is None and cloud.price_source == "config"
    gpu = rows["gpu"]
    # 1e9 tokens at 500 tokens/s = 555.6 hours; at $2/hour = $1,111
    assert gpu.hours == pytest.approx(1e9 / 500 / 3600)
    assert gpu.usd_total == pytest.approx(gpu.hours * 2.0)
    assert gpu.price_source == "hourly"
    assert rows["local"].usd_total == 0.0 and rows["local"].hours is None


def test_measured_throughput_gives_local_models_hours():
    save_measured_throughput("local", 30.0)
    rows = {r.model: r for r in project(registry(), Workload(1000, 100, 50))}
    assert rows["local"].tokens_per_second == 30.0
    assert rows["local"].hours == pytest.approx(1000 * 150 / 30 / 3600)


def test_cheapest_first_and_model_filter():
    rows = project(registry(), Workload(10, 1, 1))
    assert [r.model for r in rows] == ["local", "gpu", "cloud"]
    assert [r.model for r in project(registry(), Workload(10, 1, 1), ["cloud"])] == ["cloud"]
    with pytest.raises(ModelNotFoundError):
        project(registry(), Workload(10, 1, 1), ["nope"])
