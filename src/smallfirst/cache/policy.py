"""May this request use the cache, and how: exact, semantic, or bypass (and why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smallfirst.config import CacheConfig, CacheRouteConfig

BODY_FIELD = "cache"
"""`metadata.cache`: `no-cache` (answer fresh, store the answer) or `no-store` (neither)."""


@dataclass(slots=True, frozen=True)
class Decision:
    route: CacheRouteConfig | None
    """The route's cache settings; None: the route has no cache (no header is sent)."""
    read: bool = False
    write: bool = False
    reason: str = ""


OFF = Decision(None)


def route_config(config: CacheConfig, route: str) -> CacheRouteConfig | None:
    return config.routes.get(route) or config.routes.get("*")


def decide(
    config: CacheConfig, route: str, data: dict[str, Any], headers: Mapping[str, str]
) -> Decision:
    settings = route_config(config, route)
    if settings is None:
        return OFF
    asked = _asked(data, headers)
    if "no-store" in asked:
        return Decision(settings, reason="the client asked no-store")
    if not (settings.always or deterministic(data)):
        return Decision(settings, reason="not deterministic (no temperature 0, no seed)")
    if data.get("n") not in (None, 1):
        return Decision(settings, reason="more than one choice")
    if data.get("logprobs"):  # a cached answer keeps no logprobs
        return Decision(settings, reason="logprobs asked")
    if "no-cache" in asked:
        return Decision(settings, write=True, reason="the client asked no-cache")
    return Decision(settings, read=True, write=True)


def deterministic(data: dict[str, Any]) -> bool:
    return data.get("temperature") == 0 or data.get("seed") is not None


def _asked(data: dict[str, Any], headers: Mapping[str, str]) -> set[str]:
    words = {w.strip().lower() for w in headers.get("cache-control", "").split(",")}
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get(BODY_FIELD), str):
        words.add(metadata[BODY_FIELD].strip().lower())
    return words
