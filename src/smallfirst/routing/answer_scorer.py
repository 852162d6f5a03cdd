"""A trained answer scorer: P(correct) for a (prompt, answer) pair, learned from outcomes.

Features are the MiniLM embeddings of the prompt and of the answer side by side; the model is
a logistic regression. It is saved as plain numbers (npz + JSON), never as a pickle, so loading
a scorer file cannot run code.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from smallfirst.embeddings import get_embedder
from smallfirst.errors import ConfigError, InvalidRequestError

TRUE_WORDS = {"1", "true", "yes", "y", "correct", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "wrong", "incorrect", "f"}


@dataclass(slots=True)
class LabelledAnswers:
    """Labelled answers: what was asked, what the model said, whether it was right."""

    prompts: list[str]
    answers: list[str]
    correct: np.ndarray
    extra: dict[str, list[str]]
    """Other columns, by name (e.g. precomputed check scores)."""


def parse_bool(value: str, where: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidRequestError(f"{where}: {value!r} is not a yes/no value (use 1/0 or true/false)")


def read_labelled_answers(path: str | Path, correct_column: str = "correct") -> LabelledAnswers:
    """A CSV with columns `prompt`, `answer` and `correct` (1/0, true/false)."""
    path = Path(path)
    if not path.exists():
        raise InvalidRequestError(f"outcomes file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in ("prompt", "answer", correct_column) if c not in columns]
        if missing:
            raise InvalidRequestError(
                f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(columns)}"
            )
        rows = list(reader)
    if not rows:
        raise InvalidRequestError(f"{path}: no rows")
    correct = np.array(
        [parse_bool(r[correct_column], f"{path} row {i + 2}") for i, r in enumerate(rows)]
    )
    extra = {c: [r[c] for r in rows] for c in columns if c not in ("prompt", "answer")}
    return LabelledAnswers([r["prompt"] for r in rows], [r["answer"] for r in rows], correct, extra)


class AnswerScorer:
    def __init__(self, coef: np.ndarray, intercept: float, embedder: str = "minilm") -> None:
        self.coef = coef.astype(np.float32)
        self.intercept = float(intercept)
        self.embedder = embedder

    def features(self, prompts: list[str], answers: list[str]) -> np.ndarray:
        encode = get_embedder(self.embedder).encode
        return np.hstack([encode(prompts), encode(answers)])

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)))

    def score(self, prompts: list[str], answers: list[str]) -> np.ndarray:
        return self.predict_features(self.features(prompts, answers))

    def score_one(self, prompt: str, answer: str) -> float:
        return float(self.score([prompt], [answer])[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"kind": "answer-scorer", "embedder": self.embedder, "intercept": self.intercept}
        with path.open("wb") as handle:
            np.savez(handle, coef=self.coef, meta=np.array(json.dumps(meta)))
        return path


@lru_cache(maxsize=8)
def load_scorer(path: str) -> AnswerScorer:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            coef = data["coef"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read the scorer file {path}: {exc}") from None
    if meta.get("kind") != "answer-scorer":
        raise ConfigError(f"{path} is not an answer scorer file")
    return AnswerScorer(coef, meta["intercept"], meta.get("embedder", "minilm"))


@dataclass(slots=True)
class ScorerReport:
    n: int
    base_rate: float
    """Share of correct answers in the data."""
    heldout_auc: float | None
    """ROC AUC over 5-fold cross-validation (held-out folds); None when a class is too rare."""
    heldout_scores: np.ndarray


def train_scorer(
    outcomes: LabelledAnswers, embedder: str = "minilm", seed: int = 0
) -> tuple[AnswerScorer, ScorerReport]:
    """Fit on all rows; report the held-out AUC of 5-fold cross-validation first."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = outcomes.correct.astype(int)
    if len(set(y.tolist())) < 2:
        raise InvalidRequestError("the outcomes need both correct and wrong answers to learn from")
    scorer = AnswerScorer(np.zeros(1), 0.0, embedder)
    features = scorer.features(outcomes.prompts, outcomes.answers)
    model = LogisticRegression(C=1.0, max_iter=2000)
    folds = min(5, int(np.bincount(y).min()))
    heldout, auc = np.full(len(y), np.nan), None
    if folds >= 2:
        split = StratifiedKFold(folds, shuffle=True, random_state=seed)
        heldout = cross_val_predict(model, features, y, cv=split, method="predict_proba")[:, 1]
        auc = float(roc_auc_score(y, heldout))
    model.fit(features, y)
    fitted = AnswerScorer(model.coef_[0], float(model.intercept_[0]), embedder)
    return fitted, ScorerReport(len(y), float(y.mean()), auc, heldout)
