"""`knn`, `linear`, `mlp` and `learned` router kinds: a router file behind a `model` name.

Config:

    routers:
      auto: {kind: knn, path: router.json, large_share: 0.2, calibrate_on: prompts.jsonl,
             models: {gpt-4-1106-preview: gpt-4o, mistralai/Mixtral-8x7B-Instruct-v0.1: local}}

`large_share` / `quality_target` say what the threshold means and are met on `calibrate_on`
(once per file version); a bare `threshold` overrides; else the file's calibrated one.

`model: "router-knn-0.3"` uses the `routers` entry named `knn` (or the first of that kind)
with threshold 0.3. Router files are loaded once per path and modification time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from smallfirst.config import LearnedRouterConfig
from smallfirst.errors import ConfigError, ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import register_router_kind
from smallfirst.routing.calibration import calibrate_quality, calibrate_share, load_prompts
from smallfirst.routing.learned import LearnedRouter, predict_conversations
from smallfirst.routing.outcomes import OutcomesError
from smallfirst.routing.predictors import PREDICTOR_KINDS
from smallfirst.routing.router_file import Calibration, RouterModel, load_router_file
from smallfirst.routing.specs import find_spec


def router_spec(name: str, kind: str, registry: Registry) -> LearnedRouterConfig:
    """The `routers:` entry for a requested router name, or a 404 that says what to add."""
    spec = find_spec(name, kind, registry)
    if isinstance(spec, LearnedRouterConfig):
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


def model_map(
    name: str, router: RouterModel, spec: LearnedRouterConfig, registry: Registry
) -> dict[str, str]:
    """Router outcome names -> configured model names; 404 when one has no configured model."""
    mapping = dict(spec.models)
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
    file = Path(spec.path).expanduser()
    router = _cached_router_file(str(file), _mtime(file))
    if kind != "learned" and router.kind != kind:
        raise ModelNotFoundError(
            f"router {name!r}: {file} holds a {router.kind!r} router, not {kind!r}",
            param="model",
        )
    chosen = parse_threshold(name, threshold)
    if chosen is None and spec.threshold is not None:
        chosen = spec.threshold
    if chosen is None and spec.calibrate_on:
        chosen = _calibrated(file, spec).threshold
    return LearnedRouter(name, router, model_map(name, router, spec, registry), chosen)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def _calibrated(file: Path, spec: LearnedRouterConfig) -> Calibration:
    prompts = Path(spec.calibrate_on or "").expanduser()
    return _cached_calibration(
        str(file),
        _mtime(file),
        str(prompts),
        _mtime(prompts),
        spec.large_share,
        spec.quality_target,
    )


@lru_cache(maxsize=16)
def _cached_calibration(
    path: str,
    mtime: float,
    prompts_path: str,
    prompts_mtime: float,
    large_share: float | None,
    quality_target: float | None,
) -> Calibration:
    """The threshold meeting the config's `large_share` / `quality_target` on its prompts
    (predicted quality), computed once per router file and prompt file version."""
    router = _cached_router_file(path, mtime)
    try:
        pred = predict_conversations(router, load_prompts(prompts_path))
    except OutcomesError as exc:
        raise ConfigError(f"router {path}: calibrate_on: {exc}") from None
    if large_share is not None:
        return calibrate_share(router, pred, large_share, prompts_path)
    return calibrate_quality(router, pred, float(quality_target or 1.0), prompts_path)


def _factory(kind: str):
    def factory(name: str, threshold: str | None, registry: Registry) -> LearnedRouter:
        return build_learned(kind, name, threshold, registry)

    return factory


for _kind in (*PREDICTOR_KINDS, "learned"):
    register_router_kind(_kind, _factory(_kind))
