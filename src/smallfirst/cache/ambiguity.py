"""The ambiguity check: a semantic hit needs the stored entries about as near as the nearest one
to hold the same answer.

Near-identical messages can carry different answers ("my card has not arrived" is a delivery
question, "my card arrived but does not work" a broken-card one). When the entries whose
similarity is within `margin` of the nearest's disagree, which answer is right is a coin toss
the threshold cannot see, so the lookup is a miss. The neighbours come from the one faiss search
the lookup makes anyway (its `NEIGHBOURS` nearest instead of one).

Answers are compared by a signature: their normalised text (the audit's rule for closed
outputs: case, spacing and end punctuation aside) and their tool calls' names and arguments,
hashed. Free-text answers worded differently count as different, so on a free-text route the
check can only turn hits into misses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

NEIGHBOURS = 8
"""Nearest entries a lookup with the check on examines."""
MARGINS: tuple[float | None, ...] = (None, 0.01, 0.02, 0.05, 0.1, 0.2)
"""What `cache calibrate` tries on a labelled stream (None: no check); it keeps the one whose
calibrated threshold hits most while the precision's lower bound meets the target."""


class Neighbour(NamedTuple):
    key: str
    similarity: float
    """The entry's true cosine similarity to the query."""
    answer: int
    """The signature of the entry's answer."""


def normalised(text: str) -> str:
    """Text as closed outputs are compared: case, spacing and end punctuation aside."""
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?")


def signature(value: str) -> int:
    """A signed 64-bit hash (what the index keeps per entry)."""
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def answer_signature(text: str, tool_calls: Sequence[dict[str, Any]] = ()) -> int:
    """Equal for answers the audit's closed-output rule calls the same (tool call ids aside)."""
    calls = [
        [(c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments")]
        for c in tool_calls
    ]
    return signature(normalised(text) + "\0" + orjson.dumps(calls).decode())


def ambiguous(neighbours: Sequence[Neighbour], margin: float) -> bool:
    """Whether an entry within `margin` of the nearest's similarity holds another answer
    (`neighbours` nearest first)."""
    if not neighbours:
        return False
    best = neighbours[0]
    floor = best.similarity - margin
    return any(n.answer != best.answer for n in neighbours[1:] if n.similarity >= floor)
