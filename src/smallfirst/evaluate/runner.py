"""Run every candidate on every example, concurrently, and summarise what came back.

Each candidate gets its own bound on requests in flight (`--concurrency`): candidates are
different machines, so a slow local model must not hold back a fast cloud one, and each is
measured under the same load. A failed request is kept as a failure: it scores as wrong,
costs nothing and its message is reported, so a flaky model cannot look better by dropping
its hard items. A deferral (a student declining to answer) is neither: it lowers the
candidate's coverage, and its quality is measured on what it did answer. A candidate that
takes batches (a student) gets them, so its inputs are embedded many at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smallfirst.errors import DeferredError
from smallfirst.evaluate.candidate import BatchCandidate, Candidate, Prediction
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.metrics import Metric
from smallfirst.evaluate.progress import ProgressSink
from smallfirst.evaluate.recommend import CandidateSummary
from smallfirst.evaluate.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Estimate,
    estimate,
    percentile,
)


@dataclass(slots=True)
class CandidateResult:
    """One candidate's predictions and everything measured about them."""

    name: str
    predictions: list[Prediction | None]
    errors: list[str | None]
    metrics: dict[str, Any] = field(default_factory=dict)
    """Metric name -> Estimate (point value and 95% interval); for a candidate that defers,
    of the inputs it answered."""
    coverage: Estimate | None = None
    """Share of the inputs answered (not deferred), with its interval; None: it never defers."""
    parts: tuple[str, ...] = ()
    """For a composite `D, then X`: the candidate that defers and the one answering the rest."""

    @property
    def finished(self) -> list[Prediction]:
        """Requests that came back (answered or deferred): what latency and cost are of."""
        return [p for p in self.predictions if p is not None]

    @property
    def error_count(self) -> int:
        return sum(1 for e in self.errors if e is not None)

    @property
    def deferred_count(self) -> int:
        return sum(1 for p in self.finished if p.deferred)

    @property
    def defers(self) -> bool:
        return self.deferred_count > 0

    def scored_indices(self) -> list[int]:
        """The items quality is measured on: all but the deferred ones (failures included)."""
        return [i for i, p in enumerate(self.predictions) if p is None or not p.deferred]

    @property
    def latency_p50_s(self) -> float:
        return percentile([p.latency_s for p in self.finished], 50)

    @property
    def latency_p95_s(self) -> float:
        return percentile([p.latency_s for p in self.finished], 95)

    @property
    def usd_per_1k(self) -> float:
        """Mean cost of a request that came back, times 1,000."""
        finished = self.finished
        return 1000 * sum(p.cost_usd for p in finished) / len(finished) if finished else 0.0

    def mean_tokens(self) -> tuple[float, float]:
        finished = self.finished
        if not finished:
            return 0.0, 0.0
        n = len(finished)
        return (
            sum(p.usage.input_tokens for p in finished) / n,
            sum(p.usage.output_tokens for p in finished) / n,
        )

    def models_used(self) -> dict[str, int]:
        return dict(Counter(p.model for p in self.finished if p.model and not p.deferred))

    def summary(self, metric: str) -> CandidateSummary:
        return CandidateSummary(
            self.name,
            self.metrics[metric],
            self.usd_per_1k,
            self.latency_p50_s,
            defers=self.defers,
            parts=self.parts,
        )

    def to_json(self, include_predictions: bool = True) -> dict[str, Any]:
        tokens_in, tokens_out = self.mean_tokens()
        data: dict[str, Any] = {
            "name": self.name,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "metrics_of": "answered" if self.defers else "all",
            "coverage": self.coverage.to_json() if self.coverage else None,
            "deferred": self.deferred_count,
            "parts": list(self.parts) or None,
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "mean_input_tokens": tokens_in,
            "mean_output_tokens": tokens_out,
            "usd_per_1k_requests": self.usd_per_1k,
            "errors": self.error_count,
            "first_error": next((e for e in self.errors if e), None),
            "models_used": self.models_used(),
        }
        if include_predictions:
            data["predictions"] = [
                _prediction_json(p, e) for p, e in zip(self.predictions, self.errors, strict=True)
            ]
        return data


def _prediction_json(prediction: Prediction | None, error: str | None) -> dict[str, Any]:
    if prediction is None:
        return {"error": error}
    if prediction.deferred:
        return {"deferred": True, "model": prediction.model, "latency_s": prediction.latency_s}
    output = prediction.output
    if hasattr(output, "model_dump"):
        output = output.model_dump()
    return {
        "output": output,
        "model": prediction.model,
        "valid": prediction.valid,
        "input_tokens": prediction.usage.input_tokens,
        "output_tokens": prediction.usage.output_tokens,
        "cost_usd": prediction.cost_usd,
        "latency_s": prediction.latency_s,
    }


async def run_candidates(
    candidates: Sequence[Candidate],
    examples: Sequence[Example],
    concurrency: int = 4,
    progress: ProgressSink | None = None,
) -> list[CandidateResult]:
    """Predictions of every candidate on every example, in example order."""
    results = [
        CandidateResult(c.name, [None] * len(examples), [None] * len(examples)) for c in candidates
    ]
    jobs = []
    for candidate, result in zip(candidates, results, strict=True):
        limit = asyncio.Semaphore(max(1, concurrency))
        bar = progress.add_task(candidate.name, total=len(examples)) if progress else None
        size = candidate.batch_size if isinstance(candidate, BatchCandidate) else 1
        for first in range(0, len(examples), size):
            indices = range(first, min(first + size, len(examples)))
            jobs.append(_batch(candidate, examples, indices, result, limit, progress, bar))
    await asyncio.gather(*jobs)
    return results


async def _batch(
    candidate: Candidate,
    examples: Sequence[Example],
    indices: range,
    result: CandidateResult,
    limit: asyncio.Semaphore,
    progress: ProgressSink | None,
    bar: Any,
) -> None:
    async with limit:
        if isinstance(candidate, BatchCandidate):
            await _many(candidate, [examples[i].input for i in indices], indices, result)
        else:
            await _one(candidate, examples[indices[0]].input, indices[0], result)
    if progress is not None and bar is not None:
        progress.advance(bar, len(indices))


async def _one(candidate: Candidate, value: Any, index: int, result: CandidateResult) -> None:
    started = time.perf_counter()
    try:
        result.predictions[index] = await candidate.predict(value)
    except DeferredError:
        latency = time.perf_counter() - started
        result.predictions[index] = Prediction(None, latency_s=latency, deferred=True)
    except Exception as exc:  # any failure of one request is data, not a crash of the run
        result.errors[index] = _describe(exc)


async def _many(
    candidate: BatchCandidate, values: list[Any], indices: range, result: CandidateResult
) -> None:
    try:
        predictions = await candidate.predict_batch(values)
    except Exception as exc:  # the whole batch failed: each of its items is a failure
        for index in indices:
            result.errors[index] = _describe(exc)
        return
    for index, prediction in zip(indices, predictions, strict=True):
        result.predictions[index] = prediction


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"


def attach_estimates(
    result: CandidateResult,
    metrics: Sequence[Metric],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> None:
    """Point estimate and 95% interval of each metric (see `stats`), over the scored items
    (all but the deferred ones)."""
    scored = len(result.scored_indices())
    result.metrics = {m.name: estimate(m, scored, resamples=resamples, seed=seed) for m in metrics}
