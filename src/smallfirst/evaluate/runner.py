"""Run every candidate on every example, concurrently, and summarise what came back.

Each candidate gets its own bound on requests in flight (`--concurrency`): candidates are
different machines, so a slow local model must not hold back a fast cloud one, and each is
measured under the same load. A failed request is kept as a failure: it scores as wrong,
costs nothing and its message is reported, so a flaky model cannot look better by dropping
its hard items.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress, TaskID

from smallfirst.evaluate.candidate import Candidate, Prediction
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.metrics import Metric
from smallfirst.evaluate.recommend import CandidateSummary
from smallfirst.evaluate.stats import DEFAULT_RESAMPLES, DEFAULT_SEED, estimate, percentile


@dataclass(slots=True)
class CandidateResult:
    """One candidate's predictions and everything measured about them."""

    name: str
    predictions: list[Prediction | None]
    errors: list[str | None]
    metrics: dict[str, Any] = field(default_factory=dict)
    """Metric name -> Estimate (point value and 95% interval)."""

    @property
    def answered(self) -> list[Prediction]:
        return [p for p in self.predictions if p is not None]

    @property
    def error_count(self) -> int:
        return sum(1 for e in self.errors if e is not None)

    @property
    def latency_p50_s(self) -> float:
        return percentile([p.latency_s for p in self.answered], 50)

    @property
    def latency_p95_s(self) -> float:
        return percentile([p.latency_s for p in self.answered], 95)

    @property
    def usd_per_1k(self) -> float:
        """Mean cost of an answered request, times 1,000."""
        answered = self.answered
        return 1000 * sum(p.cost_usd for p in answered) / len(answered) if answered else 0.0

    def mean_tokens(self) -> tuple[float, float]:
        answered = self.answered
        if not answered:
            return 0.0, 0.0
        n = len(answered)
        return (
            sum(p.usage.input_tokens for p in answered) / n,
            sum(p.usage.output_tokens for p in answered) / n,
        )

    def models_used(self) -> dict[str, int]:
        return dict(Counter(p.model for p in self.answered if p.model))

    def summary(self, metric: str) -> CandidateSummary:
        return CandidateSummary(
            self.name, self.metrics[metric], self.usd_per_1k, self.latency_p50_s
        )

    def to_json(self, include_predictions: bool = True) -> dict[str, Any]:
        tokens_in, tokens_out = self.mean_tokens()
        data: dict[str, Any] = {
            "name": self.name,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
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
    progress: Progress | None = None,
) -> list[CandidateResult]:
    """Predictions of every candidate on every example, in example order."""
    results = [
        CandidateResult(c.name, [None] * len(examples), [None] * len(examples)) for c in candidates
    ]
    jobs = []
    for candidate, result in zip(candidates, results, strict=True):
        limit = asyncio.Semaphore(max(1, concurrency))
        bar = progress.add_task(candidate.name, total=len(examples)) if progress else None
        for i, example in enumerate(examples):
            jobs.append(_one(candidate, example, i, result, limit, progress, bar))
    await asyncio.gather(*jobs)
    return results


async def _one(
    candidate: Candidate,
    example: Example,
    index: int,
    result: CandidateResult,
    limit: asyncio.Semaphore,
    progress: Progress | None,
    bar: TaskID | None,
) -> None:
    async with limit:
        try:
            result.predictions[index] = await candidate.predict(example.input)
        except Exception as exc:  # any failure of one request is data, not a crash of the run
            result.errors[index] = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    if progress is not None and bar is not None:
        progress.advance(bar)


def attach_estimates(
    result: CandidateResult,
    metrics: Sequence[Metric],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> None:
    """Point estimate and 95% interval of each metric (see `stats`)."""
    n = len(result.predictions)
    result.metrics = {m.name: estimate(m, n, resamples=resamples, seed=seed) for m in metrics}
