"""Pick the cheapest candidate whose quality *lower bound* meets the bar, and say by how much
it beats the others.

Using the interval's lower bound, not the point estimate, is what keeps a lucky run on a small
sample from recommending a model that will miss the bar in production. A candidate that defers
is never recommended alone (its deferrals would go unanswered); `D, then X` is, as one
candidate: the cascade that answers what D defers with X.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smallfirst.evaluate.stats import Estimate


@dataclass(slots=True)
class CandidateSummary:
    """What the recommendation needs to know about one evaluated candidate."""

    name: str
    quality: Estimate
    usd_per_1k: float
    latency_p50_s: float
    defers: bool = False
    """It declined some inputs: its quality is of what it answered, so it cannot win alone."""
    parts: tuple[str, ...] = ()
    """A composite `D, then X`: its rungs, in order."""


@dataclass(slots=True)
class Comparison:
    other: str
    cost_ratio: float
    """other's $ / winner's $ (inf when the winner is free and the other is not)."""
    latency_ratio: float
    """other's p50 latency / winner's (above 1: the winner is faster)."""
    quality: Estimate

    def to_json(self) -> dict[str, Any]:
        return {
            "other": self.other,
            "cost_ratio": None if math.isinf(self.cost_ratio) else self.cost_ratio,
            "latency_ratio": self.latency_ratio,
            "quality": self.quality.to_json(),
        }


@dataclass(slots=True)
class Recommendation:
    metric: str
    threshold: float
    winner: str | None
    passing: list[str]
    message: str
    comparisons: list[Comparison] = field(default_factory=list)
    winner_rungs: list[str] = field(default_factory=list)
    """When the winner is `D, then X`: the rungs of the cascade to configure."""

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "winner": self.winner,
            "winner_rungs": self.winner_rungs or None,
            "passing": self.passing,
            "message": self.message,
            "comparisons": [c.to_json() for c in self.comparisons],
        }


def recommend(
    summaries: Sequence[CandidateSummary], metric: str, threshold: float
) -> Recommendation:
    """Cheapest passing candidate; ties go to the faster, then the better one. Candidates that
    defer are left out (their composites `D, then X` stand for them)."""
    summaries = [s for s in summaries if not s.defers]
    passing = [s for s in summaries if s.quality.low >= threshold]
    if not passing:
        message = _nobody_message(summaries, metric, threshold)
        return Recommendation(metric, threshold, None, [], message)
    winner = min(passing, key=lambda s: (s.usd_per_1k, s.latency_p50_s, -s.quality.value))
    comparisons = [
        Comparison(
            other.name,
            _ratio(other.usd_per_1k, winner.usd_per_1k),
            _ratio(other.latency_p50_s, winner.latency_p50_s),
            other.quality,
        )
        for other in summaries
        if other.name != winner.name
    ]
    comparisons.sort(key=lambda c: -c.cost_ratio)
    return Recommendation(
        metric,
        threshold,
        winner.name,
        [s.name for s in passing],
        _winner_message(winner, comparisons, metric),
        comparisons,
        list(winner.parts),
    )


def _ratio(other: float, winner: float) -> float:
    if winner > 0:
        return other / winner
    return 1.0 if other == 0 else math.inf


def _winner_message(winner: CandidateSummary, comparisons: list[Comparison], metric: str) -> str:
    """Headline against the priciest alternative; when none is pricier, say that the cheaper
    ones miss the bar (they must: the winner is the cheapest that passes)."""
    at = f"at {metric} {winner.quality}"
    pricier = [c for c in comparisons if c.cost_ratio > 1]
    if pricier:
        top = pricier[0]
        return (
            f"{winner.name}: {describe_cost(top.cost_ratio)} and "
            f"{describe_speed(top.latency_ratio)} than {top.other} {at}"
        )
    if comparisons:
        return f"{winner.name} meets the bar {at}; every cheaper candidate misses it"
    return f"{winner.name} meets the bar {at}"


def describe_cost(ratio: float) -> str:
    """`41x cheaper` / `as cheap` / `2x pricier`, read as "<winner> is ... than <other>"."""
    if math.isinf(ratio):
        return "free, so infinitely cheaper"
    if ratio == 0:
        return "pricier (the other is free)"
    if math.isclose(ratio, 1.0, rel_tol=0.01):
        return "no pricier"
    return f"{ratio:.3g}x cheaper" if ratio > 1 else f"{1 / ratio:.3g}x pricier"


def describe_speed(ratio: float) -> str:
    if math.isinf(ratio) or ratio <= 0:
        return "no slower"
    if math.isclose(ratio, 1.0, rel_tol=0.05):
        return "about as fast"
    return f"{ratio:.2g}x faster" if ratio > 1 else f"{1 / ratio:.2g}x slower"


def _nobody_message(summaries: Sequence[CandidateSummary], metric: str, threshold: float) -> str:
    if not summaries:
        return "no candidate that answers every input was evaluated"
    best = max(summaries, key=lambda s: s.quality.low)
    return (
        f"no candidate meets {metric} >= {threshold:g} at the interval's lower bound; the best "
        f"is {best.name} at {metric} {best.quality} (more examples narrow the interval)"
    )
