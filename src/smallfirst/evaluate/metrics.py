"""Quality metrics per task kind, written so a bootstrap can recompute them on any resample.

Each metric keeps per-item statistics and computes its value for an array of item indices:
averages (accuracy, exact match, ROUGE-L) are means of per-item scores, while macro-F1 and
field-level F1 are recomputed from counts, because averaging per-item F1 would weigh items
with one field like items with ten.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Metric(Protocol):
    name: str

    def value(self, idx: np.ndarray) -> float:
        """The metric over the items at `idx` (indices may repeat: bootstrap resamples)."""
        ...


@dataclass(slots=True)
class MeanMetric:
    """A metric that is the mean of a per-item score in [0, 1]."""

    name: str
    scores: np.ndarray

    def value(self, idx: np.ndarray) -> float:
        return float(self.scores[idx].mean()) if len(idx) else 0.0


FAILED = "\x00failed"
"""Stands for a failed prediction: wrong for every class, never a class of its own."""


@dataclass(slots=True)
class MacroF1:
    """Unweighted mean of per-class F1 over the classes seen in gold or predictions."""

    name: str
    gold: np.ndarray
    predicted: np.ndarray

    def value(self, idx: np.ndarray) -> float:
        gold, pred = self.gold[idx], self.predicted[idx]
        classes = np.setdiff1d(np.union1d(gold, pred), [FAILED])
        if len(classes) == 0:
            return 0.0
        f1s = []
        for label in classes:
            tp = np.sum((pred == label) & (gold == label))
            fp = np.sum((pred == label) & (gold != label))
            fn = np.sum((pred != label) & (gold == label))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return float(np.mean(f1s))


@dataclass(slots=True)
class MicroF1:
    """F1 from summed true positives, false positives and false negatives (e.g. over fields)."""

    name: str
    counts: np.ndarray
    """Shape (n, 3): per item tp, fp, fn."""

    def value(self, idx: np.ndarray) -> float:
        tp, fp, fn = self.counts[idx].sum(axis=0) if len(idx) else (0, 0, 0)
        if tp + fp + fn == 0:
            return 1.0  # nothing expected and nothing predicted: nothing was wrong
        return float(2 * tp / (2 * tp + fp + fn))


def normalize_label(value: Any) -> str:
    return " ".join(str(value).strip().lower().split()) if value is not None else ""


def classify_metrics(gold: Sequence[Any], predicted: Sequence[Any]) -> list[Metric]:
    """Accuracy and macro-F1; a failed prediction (None) is a wrong label of its own."""
    g = np.array([normalize_label(x) for x in gold], dtype=object)
    p = np.array([normalize_label(x) if x is not None else FAILED for x in predicted], dtype=object)
    return [MeanMetric("accuracy", (g == p).astype(float)), MacroF1("macro_f1", g, p)]


def field_counts(gold: dict[str, Any], predicted: dict[str, Any] | None) -> tuple[int, int, int]:
    """(tp, fp, fn) over fields with a value; values compare after label normalisation.

    A field whose value is empty or null counts as absent, on both sides.
    """
    gold_fields = _present(gold)
    pred_fields = _present(predicted or {})
    tp = sum(1 for k, v in pred_fields.items() if gold_fields.get(k) == v)
    return tp, len(pred_fields) - tp, len(gold_fields) - tp


def _present(fields: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, list):
            value = ", ".join(sorted(normalize_label(v) for v in value))
        text = normalize_label(value) if not isinstance(value, str) or value else ""
        if text:
            out[key] = text
    return out


def extract_metrics(
    gold: Sequence[dict[str, Any]],
    predicted: Sequence[dict[str, Any] | None],
    valid: Sequence[bool],
) -> list[Metric]:
    """Field-level micro F1, exact match of all fields, and schema validity."""
    counts = np.array([field_counts(g, p) for g, p in zip(gold, predicted, strict=True)], float)
    counts = counts.reshape(-1, 3)
    exact = (counts[:, 1] + counts[:, 2] == 0).astype(float)
    return [
        MicroF1("field_f1", counts),
        MeanMetric("exact_match", exact),
        MeanMetric("schema_valid", np.array(valid, dtype=float)),
    ]


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1, the best over the reference answers."""
    return max((_token_f1(prediction, a) for a in answers), default=0.0)


def _token_f1(prediction: str, answer: str) -> float:
    pred, gold = squad_normalize(prediction).split(), squad_normalize(answer).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def answer_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[str | None]) -> list[Metric]:
    em = [
        exact_match(p or "", g) if p is not None else 0.0
        for g, p in zip(gold, predicted, strict=True)
    ]
    f1 = [
        token_f1(p or "", g) if p is not None else 0.0 for g, p in zip(gold, predicted, strict=True)
    ]
    return [MeanMetric("token_f1", np.array(f1)), MeanMetric("exact_match", np.array(em))]


def _rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenisation: lower case, runs of letters and digits."""
    return re.findall(r"[a-z0-9]+", text.lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence by dynamic programming, one row at a time."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) between a summary and one reference."""
    pred, ref = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not pred or not ref:
        return 0.0
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def summarize_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[str | None]
) -> list[Metric]:
    scores = [
        max(rouge_l(p, ref) for ref in g) if p is not None and g else 0.0
        for g, p in zip(gold, predicted, strict=True)
    ]
    return [MeanMetric("rouge_l", np.array(scores))]
