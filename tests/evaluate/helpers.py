"""Builders for evaluation results without running a model (report and CLI output tests)."""

from __future__ import annotations

from smallfirst.evaluate.candidate import Prediction
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.evaluation import EvalReport, EvalSettings
from smallfirst.evaluate.recommend import recommend
from smallfirst.evaluate.runner import CandidateResult, attach_estimates
from smallfirst.evaluate.scoring import score
from smallfirst.types import Usage

GOLD = ["pos", "neg", "neu", "pos", "neg", "neu", "pos", "neg", "neu", "pos"] * 3


def fake_result(name: str, wrong_every: int, usd: float, latency: float) -> CandidateResult:
    """A classify candidate wrong on every `wrong_every`-th item, at a fixed cost and latency."""
    predictions = []
    for i, gold in enumerate(GOLD):
        label = "neu" if wrong_every and i % wrong_every == 0 and gold != "neu" else gold
        predictions.append(
            Prediction(label, Usage(100, 2), usd / 1000, latency * (1 + (i % 3) / 10), name)
        )
    result = CandidateResult(name, predictions, [None] * len(GOLD))
    examples = [Example(f"text {i}", g) for i, g in enumerate(GOLD)]
    attach_estimates(result, score("classify", examples, predictions), resamples=200)
    return result


def fake_report(threshold: float = 0.6, names=("tiny<b>", "big")) -> EvalReport:
    results = [fake_result(names[0], 5, 0.0, 0.05), fake_result(names[1], 10, 4.0, 0.9)]
    settings = EvalSettings(metric="accuracy", threshold=threshold, resamples=200)
    rec = recommend([r.summary("accuracy") for r in results], "accuracy", threshold)
    return EvalReport("sentiment", "classify", len(GOLD), settings, results, rec)
