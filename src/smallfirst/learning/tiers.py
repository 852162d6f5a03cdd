"""Which configured models learning treats as `large` (the reference) and `small`."""

from __future__ import annotations

from smallfirst.config import LearnConfig
from smallfirst.models.registry import Registry


def large_model(registry: Registry, config: LearnConfig) -> str:
    """`learn.large_model`, else the baseline savings are measured against."""
    return registry.get(config.large_model).name if config.large_model else registry.baseline_model


def small_model(registry: Registry, config: LearnConfig) -> str | None:
    """`learn.small_model`, else the cheapest model that is neither tiny nor the large one
    (None with a single model: nothing to shadow)."""
    if config.small_model:
        return registry.get(config.small_model).name
    large = large_model(registry, config)
    for entry in registry.by_tier():
        if entry.tier != "tiny" and entry.name != large:
            return entry.name
    return None
