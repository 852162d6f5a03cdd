"""One evaluation end to end: run the candidates, score them, recommend one.

This is the library entry point behind `smallfirst eval`; the CLI only resolves names, draws
the progress bar and writes the outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.candidate import Candidate
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.deferral import attach_coverage, composites
from smallfirst.evaluate.judge import judge_metric
from smallfirst.evaluate.progress import ProgressSink
from smallfirst.evaluate.recommend import Recommendation, recommend
from smallfirst.evaluate.runner import CandidateResult, attach_estimates, run_candidates
from smallfirst.evaluate.scoring import check_metric, score
from smallfirst.evaluate.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED
from smallfirst.models.registry import Registry

EXIT_NO_CANDIDATE = 2
"""Exit status when no candidate meets the bar, so CI can fail the job on it."""


@dataclass(slots=True)
class EvalSettings:
    metric: str
    threshold: float
    concurrency: int = 4
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    judge: str | None = None
    """A configured model that grades summaries (summarize tasks only)."""


@dataclass(slots=True)
class EvalReport:
    task: str
    kind: str
    n: int
    settings: EvalSettings
    results: list[CandidateResult]
    recommendation: Recommendation

    @property
    def exit_code(self) -> int:
        return 0 if self.recommendation.winner else EXIT_NO_CANDIDATE

    def to_json(self, include_predictions: bool = True) -> dict[str, Any]:
        return {
            "task": self.task,
            "kind": self.kind,
            "examples": self.n,
            "metric": self.settings.metric,
            "threshold": self.settings.threshold,
            "confidence_level": DEFAULT_LEVEL,
            "bootstrap_resamples": self.settings.resamples,
            "seed": self.settings.seed,
            "judge": self.settings.judge,
            "recommendation": self.recommendation.to_json(),
            "candidates": [r.to_json(include_predictions) for r in self.results],
        }


async def evaluate(
    task: str,
    kind: str,
    candidates: Sequence[Candidate],
    examples: Sequence[Example],
    settings: EvalSettings,
    registry: Registry | None = None,
    progress: ProgressSink | None = None,
) -> EvalReport:
    """Run, score with bootstrap intervals, and recommend the cheapest candidate that passes.

    A candidate that defers is scored on what it answered, beside its coverage, and each
    `D, then X` composite (see `deferral`) is scored and may be recommended."""
    check_metric(kind, settings.metric)
    if settings.judge is not None and kind != "summarize":
        raise InvalidRequestError("a judge grades summaries: --judge needs a summarize task")
    if settings.metric == "judge" and settings.judge is None:
        raise InvalidRequestError("the metric `judge` needs a judge model (--judge MODEL)")
    results = await run_candidates(candidates, examples, settings.concurrency, progress)
    results += composites(results)
    for result in results:
        scored = result.scored_indices()
        items = [examples[i] for i in scored]
        predictions = [result.predictions[i] for i in scored]
        metrics = score(kind, items, predictions)
        if settings.judge and kind == "summarize" and registry is not None:
            metrics.append(
                await judge_metric(
                    registry, settings.judge, items, predictions, settings.concurrency
                )
            )
        attach_estimates(result, metrics, settings.resamples, settings.seed)
        attach_coverage(result)
    summaries = [r.summary(settings.metric) for r in results]
    recommendation = recommend(summaries, settings.metric, settings.threshold)
    return EvalReport(task, kind, len(examples), settings, results, recommendation)
