"""Which `routers:` entry a requested router name means."""

from __future__ import annotations

from smallfirst.config import RouterConfig
from smallfirst.models.registry import Registry


def find_spec(name: str, kind: str, registry: Registry) -> RouterConfig | None:
    """The entry named `name`, else the one named after the kind, else the first of that kind.

    So `auto` finds `routers.auto`, and `router-knn-0.3` finds `routers.knn` or any knn entry.
    """
    routers = registry.config.routers
    for key in (name, kind):
        spec = routers.get(key)
        if spec is not None and spec.kind == kind:
            return spec
    return next((spec for spec in routers.values() if spec.kind == kind), None)
