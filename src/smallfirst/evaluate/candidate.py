"""What the evaluator runs: anything with a name that turns an input into a prediction.

The interface is deliberately narrow (like an httpx transport) so models, routers, cascades
and students are all evaluated the same way; adapters in `adapters.py` build candidates
from names the registry and router resolution understand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from smallfirst.types import Usage


@dataclass(slots=True)
class Prediction:
    output: Any
    """The label (classify), an object of fields (extract) or text (summarize, answer)."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    model: str = ""
    """The configured model that answered (a router or cascade names the one it used)."""
    valid: bool = True
    """False when the output did not parse or did not match the task's schema."""
    deferred: bool = False
    """The candidate declined to answer (a student below its threshold): no output, and not
    a wrong answer either; it counts against coverage, not accuracy."""


@runtime_checkable
class Candidate(Protocol):
    name: str

    async def predict(self, input: Any) -> Prediction: ...


@runtime_checkable
class BatchCandidate(Candidate, Protocol):
    """A candidate that is faster on many inputs at once (a student embeds a whole batch in
    one call); the runner gives it batches instead of single inputs."""

    batch_size: int

    async def predict_batch(self, inputs: Sequence[Any]) -> list[Prediction]: ...
