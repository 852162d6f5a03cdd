"""Candidates that defer: their coverage, and the cascade each would sit in.

A student answers only when it is sure, so "accuracy over every input" scores its deferrals as
wrong answers and says nothing useful. It is measured twice instead: coverage (the share it
answers) and the quality of what it answers, each with an interval; and, since a deferral is
served by the next rung in production, as `D, then X`: the composite of the deferring
candidate D and each candidate X that answers everything, built from the predictions both
already made (no extra requests). That composite is what the recommendation can pick.
"""

from __future__ import annotations

from collections.abc import Sequence

from smallfirst.evaluate.candidate import Prediction
from smallfirst.evaluate.runner import CandidateResult
from smallfirst.evaluate.stats import Estimate, wilson
from smallfirst.types import Usage


def attach_coverage(result: CandidateResult) -> None:
    """The share of inputs a deferring candidate answered; None for one that never defers."""
    if result.defers:
        answered = len(result.predictions) - result.deferred_count
        result.coverage = proportion(answered, len(result.predictions))


def proportion(successes: int, n: int) -> Estimate:
    """A share with its Wilson 95% interval (an empty set says nothing: [0, 1])."""
    if n == 0:
        return Estimate(0.0, 0.0, 1.0, "wilson")
    low, high = wilson(successes, n)
    return Estimate(successes / n, low, high, "wilson")


def composite_name(first: str, then: str) -> str:
    return f"{first}, then {then}"


def composites(results: Sequence[CandidateResult]) -> list[CandidateResult]:
    """`D, then X` for every candidate D that deferred and every X that never does."""
    deferring = [r for r in results if r.defers and not r.parts]
    answering = [r for r in results if not r.defers]
    return [then_answer(d, x) for d in deferring for x in answering]


def then_answer(first: CandidateResult, then: CandidateResult) -> CandidateResult:
    """`first`'s answers, and `then`'s wherever `first` deferred or failed (as a cascade would
    escalate); an escalated item costs and takes the time of both."""
    predictions: list[Prediction | None] = []
    errors: list[str | None] = []
    for mine, error, theirs, their_error in zip(
        first.predictions, first.errors, then.predictions, then.errors, strict=True
    ):
        if mine is not None and not mine.deferred and error is None:
            predictions.append(mine)
            errors.append(None)
        elif theirs is None:
            predictions.append(None)
            errors.append(their_error)
        else:
            predictions.append(_escalated(mine, theirs))
            errors.append(None)
    return CandidateResult(
        composite_name(first.name, then.name), predictions, errors, parts=(first.name, then.name)
    )


def _escalated(mine: Prediction | None, theirs: Prediction) -> Prediction:
    if mine is None:  # a failed first rung: its time and cost were not measured
        return theirs
    usage = Usage(
        mine.usage.input_tokens + theirs.usage.input_tokens,
        mine.usage.output_tokens + theirs.usage.output_tokens,
    )
    return Prediction(
        theirs.output,
        usage,
        mine.cost_usd + theirs.cost_usd,
        mine.latency_s + theirs.latency_s,
        theirs.model,
        theirs.valid,
    )
