"""Where a task goes when its model fails it: the cheapest configured model a tier higher.

"Default to small, escalate when needed": a small model that gives invalid or empty output
after its repair turn hands the input up one tier (small -> medium -> large), not back to the
caller as an error. Models of the same tier are not tried: they would fail the same way.
"""

from __future__ import annotations

from smallfirst.models.registry import Registry
from smallfirst.types import TIERS


def tier_above(registry: Registry, model: str) -> str | None:
    """The cheapest model of the next higher tier that has one, or None at the top."""
    rank = TIERS.index(registry.get(model).tier)
    higher = [e for e in registry.by_tier() if TIERS.index(e.tier) > rank]
    return higher[0].name if higher else None
