"""What every router shares: the decision it returns and how a `model` name finds a router.

A router only decides; it never calls a model, imports the server or does I/O per request.
`model: "auto"` and `model: "router-<kind>-<threshold>"` in a request resolve here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from smallfirst.config import BUILTIN_ROUTER_KINDS, PLUGIN_ROUTER_KINDS
from smallfirst.errors import ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.types import Message


@dataclass(slots=True)
class RouteDecision:
    model: str
    """The configured model chosen to answer."""
    router: str
    """The router's name as requested, e.g. `auto` or `router-knn-0.3`."""
    reason: str
    """Why, in words a person can read in the ledger (`rule: pii -> local`, `knn 0.71 >= 0.3`)."""
    score: float | None = None
    """The router's score for the choice (e.g. predicted quality or P(large model needed))."""
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Router(Protocol):
    name: str

    def decide(self, messages: list[Message]) -> RouteDecision: ...


RouterFactory = Callable[[str, str | None, Registry], Router]
"""(requested name, threshold text or None, registry) -> router."""

ROUTER_KINDS: dict[str, RouterFactory] = {}


def register_router_kind(kind: str, factory: RouterFactory) -> None:
    """Add a router kind; register it before the config loads, so `kind: <it>` is accepted
    there (its entry's keys are then the plugin's own, read with `spec.get(key)`)."""
    ROUTER_KINDS[kind] = factory
    if kind not in BUILTIN_ROUTER_KINDS:
        PLUGIN_ROUTER_KINDS.add(kind)


class DefaultRouter:
    """`auto` before any router is configured: every request goes to the default model."""

    def __init__(self, registry: Registry, name: str = "auto") -> None:
        self.name = name
        self.model = registry.default_model

    def decide(self, messages: list[Message]) -> RouteDecision:
        return RouteDecision(self.model, self.name, "no router configured: default model")


def is_router_name(name: str) -> bool:
    return name == "auto" or name.startswith("router-")


def resolve_router(name: str, registry: Registry) -> Router | None:
    """The router a request's `model` names, or None when it names a plain model.

    `auto` uses `routers.auto` from the config when present, else the default model.
    `router-<kind>-<threshold>` builds a router of that registered kind. Any other entry
    under `routers:` is that router, by its name (as a rules router's `default` names one).
    """
    if name in registry.entries:
        return None
    if name == "auto":
        spec = registry.config.routers.get("auto")
        if spec is None:
            return DefaultRouter(registry)
        return _build(spec.kind, "auto", getattr(spec, "threshold", None), registry)
    if name.startswith("router-"):
        kind, _, threshold = name.removeprefix("router-").partition("-")
        return _build(kind, name, threshold or None, registry)
    spec = registry.config.routers.get(name)
    if spec is not None:
        return _build(spec.kind, name, getattr(spec, "threshold", None), registry)
    return None


def build_router(kind: str, name: str, threshold: Any, registry: Registry) -> Router:
    """A router of a registered kind (for routers that hand undecided requests to another)."""
    return _build(kind, name, threshold, registry)


def _build(kind: str, name: str, threshold: Any, registry: Registry) -> Router:
    _load_builtin_kinds()
    factory = ROUTER_KINDS.get(kind)
    if factory is None:
        raise ModelNotFoundError(
            f"Unknown router kind {kind!r} in {name!r}. "
            f"Known kinds: {', '.join(sorted(ROUTER_KINDS))}",
            param="model",
        )
    return factory(name, None if threshold is None else str(threshold), registry)


def _load_builtin_kinds() -> None:
    """Import the modules that register the built-in router kinds (lazily: they load numpy etc.)."""
    import importlib

    for module in BUILTIN_KIND_MODULES:
        importlib.import_module(module)


BUILTIN_KIND_MODULES: list[str] = [
    "smallfirst.routing.rules",
    "smallfirst.routing.rating",
    "smallfirst.routing.learned_kinds",
]
"""Modules whose import registers router kinds; routing modules append themselves here."""
