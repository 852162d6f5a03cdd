"""Which slot (llama.cpp sequence) a new request takes, and which cached prefix it reuses.

Every slot remembers the tokens its sequence holds in the KV cache. A finished request leaves
its prompt there, so the next request with the same instructions, labels or system prompt
finds them: in the free slot it takes (nothing to copy), or in another, busy slot (its stream
of the KV cache is copied, a memory copy far cheaper than evaluating a long prefix again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def common_prefix(a: list[int], b: list[int]) -> int:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return size


@dataclass(slots=True)
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)
    """The tokens this sequence holds in the KV cache, at positions 0..len-1."""
    job: Any = None
    used_at: int = 0


@dataclass(slots=True)
class Placement:
    slot: Slot
    reuse: int
    """Leading tokens of the prefix already in the KV cache."""
    source: Slot | None
    """The slot whose first `reuse` cells are copied in; None: the slot's own cells serve."""


MIN_COPY = 64
"""Fewer reused tokens than this are evaluated again rather than copied from another slot."""


def place(slots: list[Slot], prefix: list[int]) -> Placement | None:
    """The free slot for `prefix` that keeps the most tokens already evaluated; None when
    every slot is busy. Ties go to the slot used longest ago, so hot prefixes survive."""
    free = [s for s in slots if s.job is None]
    if not free:
        return None
    own = max(free, key=lambda s: (common_prefix(s.cached, prefix), -s.used_at))
    own_reuse = common_prefix(own.cached, prefix)
    donor = max(slots, key=lambda s: common_prefix(s.cached, prefix))
    donor_reuse = common_prefix(donor.cached, prefix)
    if donor_reuse >= own_reuse + MIN_COPY:  # a busy slot holds much more of it: copy it
        return Placement(min(free, key=lambda s: s.used_at), donor_reuse, donor)
    return Placement(own, own_reuse, None)
