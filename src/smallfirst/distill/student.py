"""Tier 0: a tiny classifier on sentence embeddings that answers only when it is sure.

Trained from a bank's teacher labels. Confidence is calibrated with temperature scaling on
out-of-fold predictions (k-fold over the training pairs, so no example scores itself), and the
answer threshold is the lowest confidence at which the out-of-fold answers still reach the
target accuracy. Below it the student defers and the request climbs to the next rung.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import InvalidRequestError, ModelLoadError

StudentKind = Literal["logreg", "mlp"]
FORMAT = "smallfirst-student/1"
_FLOOR = 1e-12


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    confidence: float
    answered: bool


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Out-of-fold quality: what the threshold was chosen on."""

    n: int
    accuracy: float
    coverage: float
    answered_accuracy: float


def _make_model(kind: StudentKind, seed: int) -> Any:
    if kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=300, random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0, max_iter=2000)


def _log_probs(model: Any, x: np.ndarray, labels: list[str]) -> np.ndarray:
    """log P(label) over the full label list (labels unseen in training get ~0 probability)."""
    out = np.full((len(x), len(labels)), np.log(_FLOOR), dtype=np.float64)
    classes = list(model.classes_)
    if len(classes) == 1:
        out[:, labels.index(classes[0])] = 0.0
        return out
    probs = np.clip(model.predict_proba(x), _FLOOR, 1.0)
    for column, label in enumerate(classes):
        out[:, labels.index(label)] = np.log(probs[:, column])
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (a 1-D grid search)."""
    best, best_nll = 1.0, np.inf
    for t in np.geomspace(0.05, 20.0, 81):
        p = softmax(log_probs, t)[np.arange(len(y)), y]
        nll = -np.log(np.clip(p, _FLOOR, 1.0)).mean()
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Lowest confidence such that answers at or above it reach `target` accuracy.

    inf when even the most confident answer is wrong (the student then always defers).
    """
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    accuracy = hits / np.arange(1, len(order) + 1)
    ok = np.nonzero(accuracy >= target)[0]
    if len(ok) == 0:
        return float("inf")
    return float(confidence[order][ok[-1]])


def _out_of_fold(
    x: np.ndarray, y: np.ndarray, labels: list[str], kind: StudentKind, folds: int, seed: int
) -> np.ndarray:
    from sklearn.model_selection import KFold

    out = np.zeros((len(x), len(labels)))
    splitter = KFold(n_splits=min(folds, len(x)), shuffle=True, random_state=seed)
    names = np.asarray(labels, dtype=object)
    for train, test in splitter.split(x):
        model = _make_model(kind, seed).fit(x[train], names[y[train]])
        out[test] = _log_probs(model, x[test], labels)
    return out


@dataclass
class TinyClassifier:
    """A fitted student: embedder name, sklearn model, temperature and answer threshold."""

    model: Any
    labels: list[str]
    temperature: float
    threshold: float
    target_accuracy: float
    heldout: HeldOut
    kind: StudentKind = "logreg"
    embedder_name: str = "minilm"
    input_name: str = "Text"
    """How task prompts name the input (`Text: ...`); the provider strips that prefix."""

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Calibrated P(label), one row per vector."""
        return softmax(_log_probs(self.model, vectors, self.labels), self.temperature)

    def predict_vectors(self, vectors: np.ndarray) -> list[Prediction]:
        probs = self.scores(vectors)
        best = probs.argmax(axis=1)
        return [
            Prediction(self.labels[i], float(p[i]), bool(p[i] >= self.threshold))
            for i, p in zip(best, probs, strict=True)
        ]

    def predict(self, texts: list[str], embedder: Embedder | None = None) -> list[Prediction]:
        embedder = embedder or get_embedder(self.embedder_name)
        return self.predict_vectors(embedder.encode(texts))

    def save(self, path: str | Path) -> None:
        import joblib

        state = {k: v for k, v in self.__dict__.items() if k != "heldout"}
        joblib.dump({"format": FORMAT, **state, "heldout": asdict(self.heldout)}, path)

    @classmethod
    def load(cls, path: str | Path) -> TinyClassifier:
        """Load a student file. joblib files are pickles: load only files you trust."""
        import joblib

        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(
                f"student file {path} does not exist (train one with "
                "`smallfirst distill student BANK --out FILE`)"
            )
        try:
            state = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(f"student file {path} could not be read: {exc}") from None
        if not isinstance(state, dict) or state.pop("format", None) != FORMAT:
            raise ModelLoadError(f"{path} is not a smallfirst student file ({FORMAT})")
        state["heldout"] = HeldOut(**state["heldout"])
        return cls(**state)


def train_student(
    vectors: np.ndarray,
    labels: list[str],
    *,
    target_accuracy: float = 0.97,
    kind: StudentKind = "logreg",
    folds: int = 5,
    seed: int = 0,
    embedder_name: str = "minilm",
) -> TinyClassifier:
    """Fit on all pairs; calibrate and pick the threshold on k-fold out-of-fold predictions."""
    if not 0.0 < target_accuracy <= 1.0:
        raise InvalidRequestError("target accuracy must be in (0, 1]", param="target_accuracy")
    names = sorted(set(labels))
    if len(labels) < 4 or len(names) < 2:
        raise InvalidRequestError(
            f"a student needs at least 4 labelled examples of 2+ labels; got {len(labels)} "
            f"examples of {len(names)} label(s)"
        )
    x = np.asarray(vectors, dtype=np.float32)
    y = np.asarray([names.index(label) for label in labels])
    # These fits are small: multi-threaded BLAS only adds contention (20x slower on a busy box).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # few examples of many labels is the normal few-shot case, not a regression problem
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        oof = _out_of_fold(x, y, names, kind, folds, seed)
        model = _make_model(kind, seed).fit(x, np.asarray(labels, dtype=object))
    temperature = fit_temperature(oof, y)
    probs = softmax(oof, temperature)
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    threshold = choose_threshold(confidence, correct, target_accuracy)
    answered = confidence >= threshold
    heldout = HeldOut(
        n=len(y),
        accuracy=float(correct.mean()),
        coverage=float(answered.mean()),
        answered_accuracy=float(correct[answered].mean()) if answered.any() else 0.0,
    )
    return TinyClassifier(
        model, names, temperature, threshold, target_accuracy, heldout, kind, embedder_name
    )


def train_from_bank(bank: Any, **options: Any) -> TinyClassifier:
    """Train on a bank's labelled examples (a classification task's bank)."""
    matrix, examples = bank.vectors()
    rows = [i for i, example in enumerate(examples) if example.label]
    if not rows:
        raise InvalidRequestError(
            f"bank {bank.path} has no labels: a tiny student needs a `classify` task's bank"
        )
    labels = [examples[i].label for i in rows]
    student = train_student(matrix[rows], labels, embedder_name=bank.embedder.name, **options)
    student.input_name = (bank.meta().get("task") or {}).get("input_name", "Text")
    return student
