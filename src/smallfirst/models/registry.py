"""The configured models: their tier, price and (lazily built) provider.

Backends are looked up by name in `BACKENDS`; a plugin adds one with `register_backend`,
and the core never imports a backend it does not use.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from smallfirst.config import Config, ModelConfig, load_config, state_dir
from smallfirst.errors import ModelNotFoundError
from smallfirst.models import capabilities
from smallfirst.models.capabilities import (
    BackendDefaults,
    Capabilities,
    PromptStyle,
    capabilities_of,
    set_backend_defaults,
)
from smallfirst.models.pricing import ModelPrice, price_of
from smallfirst.types import TIERS

if TYPE_CHECKING:
    from smallfirst.models.base import Provider

ProviderFactory = Callable[[ModelConfig], "Provider"]


class ProviderWrapper(Protocol):
    def wrap(self, name: str, provider: Provider) -> Provider: ...


BACKENDS: dict[str, str] = {
    "llamacpp": "smallfirst.models.llamacpp:LlamaCppProvider",
    "openai": "smallfirst.models.openai:OpenAIProvider",
    "anthropic": "smallfirst.models.anthropic:AnthropicProvider",
    "replay": "smallfirst.models.replay:ReplayProvider",
    "student": "smallfirst.distill.provider:StudentProvider",
}

WRAPPER = "smallfirst.routing.resilience:Resilience"
"""What every provider is seen through: retries, fallbacks, circuit and deadline (`failover:`).
Named by import path like the backends, so nothing under models/ imports routing."""


def register_backend(
    name: str,
    target: str | ProviderFactory,
    capabilities: BackendDefaults | None = None,
    *,
    prompt_style: PromptStyle = "chat",
) -> None:
    """Add a backend: an import path `module:Class` or a factory taking a ModelConfig.

    `capabilities` are its models' defaults (a Capabilities, or a function of the model's
    config); without them a model declares its own, and is not `local` unless it says so.
    `prompt_style` is how its models are prompted when they do not set `prompt_style`
    (`completion` for base models without a chat template).
    """
    BACKENDS[name] = target  # type: ignore[assignment]
    set_backend_defaults(name, capabilities, prompt_style)


def _factory(backend: str) -> ProviderFactory:
    target = BACKENDS[backend]
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(slots=True)
class ModelEntry:
    config: ModelConfig
    price: ModelPrice
    _capabilities: tuple[int, Capabilities] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def tier(self) -> str:
        return self.config.tier

    @property
    def capabilities(self) -> Capabilities:
        """Worked out once (~70 µs, read several times on every request), again only when a
        backend's defaults change."""
        known = self._capabilities
        if known is None or known[0] != capabilities.DEFAULTS_VERSION:
            known = self._capabilities = (
                capabilities.DEFAULTS_VERSION,
                capabilities_of(self.config),
            )
        return known[1]


class Registry:
    """Name -> model. Providers are created on first use and shared after."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        measured = load_measured_throughput()
        self.entries: dict[str, ModelEntry] = {
            m.name: ModelEntry(m, price_of(m, measured.get(m.name))) for m in self.config.models
        }
        self._providers: dict[str, Provider] = {}
        self._wrapped: dict[str, Provider] = {}
        self._wrapper: ProviderWrapper | None = None

    @classmethod
    def from_file(cls, path: str | None = None) -> Registry:
        return cls(load_config(path))

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> ModelEntry:
        if name == "default":
            name = self.default_model
        try:
            return self.entries[name]
        except KeyError:
            raise ModelNotFoundError(
                f"The model {name!r} does not exist. Configured models: {', '.join(self.entries)}",
                param="model",
            ) from None

    def provider(self, name: str) -> Provider:
        """The model's provider behind its failover policy (what every caller should use)."""
        entry = self.get(name)
        wrapped = self._wrapped.get(entry.name)
        if wrapped is None:
            wrapped = self.wrapper.wrap(entry.name, self.raw_provider(entry.name))
            self._wrapped[entry.name] = wrapped
        return wrapped

    def raw_provider(self, name: str) -> Provider:
        """The backend itself, one attempt per call (for the failover policy's own attempts)."""
        entry = self.get(name)
        if entry.name not in self._providers:
            self._providers[entry.name] = _factory(entry.config.backend)(entry.config)
        return self._providers[entry.name]

    @property
    def wrapper(self) -> ProviderWrapper:
        """Made on first use from `WRAPPER`; one per registry, so its cooldowns are shared."""
        if self._wrapper is None:
            module_name, _, attr = WRAPPER.partition(":")
            self._wrapper = getattr(importlib.import_module(module_name), attr)(self)
        return self._wrapper

    def by_tier(self) -> list[ModelEntry]:
        """Cheapest rung first: by tier, then by output price."""
        return sorted(
            self.entries.values(),
            key=lambda e: (TIERS.index(e.config.tier), e.price.output_per_mtok),
        )

    @property
    def default_model(self) -> str:
        if self.config.default_model:
            return self.config.default_model
        return self.by_tier()[0].name

    @property
    def baseline_model(self) -> str:
        if self.config.baseline_model:
            return self.config.baseline_model
        return max(
            self.entries.values(),
            key=lambda e: (e.price.input_per_mtok + e.price.output_per_mtok, TIERS.index(e.tier)),
        ).name

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        self._wrapped.clear()


def throughput_file() -> Path:
    return state_dir() / "throughput.json"


def load_measured_throughput() -> dict[str, float]:
    """tokens/s measured by `smallfirst models --measure`, used to price self-hosted models."""
    path = throughput_file()
    if not path.exists():
        return {}
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError):
        return {}


def save_measured_throughput(name: str, tokens_per_s: float) -> None:
    data = load_measured_throughput()
    data[name] = tokens_per_s
    path = throughput_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
