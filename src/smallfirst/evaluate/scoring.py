"""Turn gold answers and predictions into the metrics that fit the task kind.

Each kind has a primary metric, the one the threshold applies to unless the user picks another:
accuracy for classify, field F1 for extract, ROUGE-L (or the judge's score) for summarize and
SQuAD token F1 for answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.candidate import Prediction
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.metrics import (
    Metric,
    answer_metrics,
    classify_metrics,
    extract_metrics,
    summarize_metrics,
)

PRIMARY_METRIC = {
    "classify": "accuracy",
    "extract": "field_f1",
    "summarize": "rouge_l",
    "answer": "token_f1",
}
METRICS_BY_KIND = {
    "classify": ("accuracy", "macro_f1"),
    "extract": ("field_f1", "exact_match", "schema_valid"),
    "summarize": ("rouge_l", "judge"),
    "answer": ("token_f1", "exact_match"),
}


def score(
    kind: str, examples: Sequence[Example], predictions: Sequence[Prediction | None]
) -> list[Metric]:
    """Metrics for one candidate; a failed prediction (None) scores as wrong."""
    outputs = [p.output if p is not None else None for p in predictions]
    gold = [e.expected for e in examples]
    if kind == "classify":
        return classify_metrics(gold, outputs)
    if kind == "extract":
        objects = [_as_fields(o) for o in outputs]
        valid = [
            p is not None and p.valid and o is not None
            for p, o in zip(predictions, objects, strict=True)
        ]
        return extract_metrics([_gold_fields(g) for g in gold], objects, valid)
    texts = [None if o is None else str(o) for o in outputs]
    references = [_references(g) for g in gold]
    if kind == "summarize":
        return summarize_metrics(references, texts)
    if kind == "answer":
        return answer_metrics(references, texts)
    raise InvalidRequestError(f"no metrics for task kind {kind!r}")


def check_metric(kind: str, metric: str) -> None:
    """Fail early, before any model runs, when the threshold names a metric the kind lacks."""
    known = METRICS_BY_KIND.get(kind, ())
    if metric not in known:
        raise InvalidRequestError(
            f"metric {metric!r} does not apply to a {kind} task; use one of {', '.join(known)}",
            param="metric",
        )


def _as_fields(output: Any) -> dict[str, Any] | None:
    if output is None:
        return None
    if hasattr(output, "model_dump"):
        return output.model_dump()
    return output if isinstance(output, dict) else None


def _gold_fields(expected: Any) -> dict[str, Any]:
    if not isinstance(expected, dict):
        raise InvalidRequestError(
            "an extract task's `expected` must be an object of fields, "
            f"got {type(expected).__name__}"
        )
    return expected


def _references(expected: Any) -> list[str]:
    """A reference text or answer, or a list of accepted ones."""
    if isinstance(expected, list):
        return [str(x) for x in expected]
    return [str(expected)]
