"""`knn`, `linear`, `mlp` and `learned` router kinds: a router file behind a `model` name.

Config:

    routers:
      auto: {kind: knn, path: router.json, threshold: 0.2,
             models: {gpt-4-1106-preview: gpt-4o, mistralai/Mixtral-8x7B-Instruct-v0.1: local}}

`model: "router-knn-0.3"` uses the `routers` entry named `knn` (or the first of that kind)
with threshold 0.3. Router files are loaded once per path and modification time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from smallfirst.errors import ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import register_router_kind
from smallfirst.routing.learned import LearnedRouter
from smallfirst.routing.predictors import PREDICTOR_KINDS
from smallfirst.routing.router_file import RouterModel, load_router_file
from smallfirst.routing.specs import find_spec


def router_spec(name: str, kind: str, registry: Registry) -> dict[str, Any]:
    """The `routers:` entry for a requested router name, or a 404 that says what to add."""
    spec = find_spec(name, kind, registry)
    if spec is not None:
        return spec
    raise ModelNotFoundError(
        f"{name!r}: no router of kind {kind!r} is configured; add to smallfirst.yaml "
        f"`routers: {{{kind}: {{kind: {kind}, path: router.json}}}}`",
        param="model",
    )


def parse_threshold(name: str, text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise ModelNotFoundError(
            f"{name!r}: threshold {text!r} is not a number (e.g. router-knn-0.25)", param="model"
        ) from None


@lru_cache(maxsize=16)
def _cached_router_file(path: str, mtime: float) -> RouterModel:
    return load_router_file(path)


def model_map(name: str, router: RouterModel, spec: dict[str, Any], registry: Registry) -> dict:
    """Router outcome names -> configured model names; 404 when one has no configured model."""
    mapping = {str(k): str(v) for k, v in (spec.get("models") or {}).items()}
    missing = [m for m in router.models if mapping.get(m, m) not in registry.entries]
    if missing:
        pairs = ", ".join(f"{m}: <model>" for m in missing)
        raise ModelNotFoundError(
            f"router {name!r} can route to {missing}, which are not configured models "
            f"(configured: {', '.join(registry.entries)}); map them in its config: "
            f"`models: {{{pairs}}}`",
            param="model",
        )
    return mapping


def build_learned(kind: str, name: str, threshold: str | None, registry: Registry) -> LearnedRouter:
    spec = router_spec(name, kind, registry)
    path = spec.get("path")
    if not path:
        raise ModelNotFoundError(f"router {name!r}: its config needs `path: router.json`")
    file = Path(str(path)).expanduser()
    mtime = file.stat().st_mtime if file.exists() else 0.0
    router = _cached_router_file(str(file), mtime)
    if kind != "learned" and router.kind != kind:
        raise ModelNotFoundError(
            f"router {name!r}: {file} holds a {router.kind!r} router, not {kind!r}",
            param="model",
        )
    chosen = parse_threshold(name, threshold)
    if chosen is None and spec.get("threshold") is not None:
        chosen = parse_threshold(name, str(spec["threshold"]))
    return LearnedRouter(name, router, model_map(name, router, spec, registry), chosen)


def _factory(kind: str):
    def factory(name: str, threshold: str | None, registry: Registry) -> LearnedRouter:
        return build_learned(kind, name, threshold, registry)

    return factory


for _kind in (*PREDICTOR_KINDS, "learned"):
    register_router_kind(_kind, _factory(_kind))
