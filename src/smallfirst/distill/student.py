"""Tier 0: a tiny classifier on sentence embeddings that answers only when it is sure.

Trained from a bank's teacher labels. Confidence is calibrated with temperature scaling on
out-of-fold predictions (k-fold over the training pairs, so no example scores itself). The
student answers only when the input is also *familiar* (similar enough to a training example):
a classifier is confident about inputs that belong to no label at all. Both thresholds are
chosen together (`deferral.calibrate_deferral`) so that the 95% lower bound of the out-of-fold
answers' accuracy reaches the target, and out-of-scope stand-ins — examples of labels held out
of the model that scores them, plus any background traffic — are rarely answered. Background
traffic (inputs that are not this task's job) is also learnt as a class that always defers.
Otherwise the student defers and the request climbs to the next rung.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from smallfirst.distill.deferral import Deferral, calibrate_deferral, confidence_only
from smallfirst.distill.novelty import nearest_similarity
from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import InvalidRequestError, ModelLoadError
from smallfirst.evaluate.stats import DEFAULT_LEVEL, Rate, wilson_bound
from smallfirst.routing.thresholds import calibrate_threshold

StudentKind = Literal["logreg", "mlp", "knn"]
KINDS = ("logreg", "mlp", "knn")
FORMAT = "smallfirst-student/1"
BACKGROUND = "__background__"
"""The class background traffic is learnt as; predicting it always defers."""
_FLOOR = 1e-12
_MIN_LABELS_TO_HOLD_OUT = 4
"""Out-of-scope stand-ins come from models trained without some labels: with fewer than 4
labels such a model has one or two left and is sure of one of them whatever the input."""
_LABEL_GROUPS = 5


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    confidence: float
    answered: bool
    similarity: float = 1.0
    """Cosine similarity to the nearest training example (how familiar the input is)."""
    reason: str = ""
    """Why it deferred: `unsure` (confidence), `unfamiliar` (similarity), `background`."""


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Out-of-fold quality: what the thresholds were chosen on."""

    n: int
    accuracy: float
    coverage: float
    answered_accuracy: float
    answered_n: int = 0
    lower_bound: float = 0.0
    """One-sided lower bound (at `level`) of `answered_accuracy`."""
    level: float = DEFAULT_LEVEL
    foreign_n: int = 0
    """Out-of-scope stand-ins the thresholds were checked on (held-out labels, background)."""
    foreign_answered: float = 0.0
    """Share of them the student would answer (each such answer is wrong)."""
    foreign_labels: int = 0
    """How many labels were held out to make stand-ins (0: none, fewer than 4 labels)."""

    @property
    def answered(self) -> Rate:
        right = round(self.answered_accuracy * self.answered_n)
        return Rate(right, self.answered_n, self.level)

    @property
    def foreign(self) -> Rate:
        return Rate(round(self.foreign_answered * self.foreign_n), self.foreign_n, self.level)

    def summary(self) -> str:
        """The claim in one line, with its interval and the examples behind it."""
        answered = self.answered
        low, high = answered.interval
        text = (
            f"answers {self.coverage:.1%} of held-out inputs (N={self.n}) at accuracy "
            f"{answered.value:.3f} ({self.level:.0%} CI {low:.3f}-{high:.3f}, lower bound "
            f"{self.lower_bound:.3f}, N={answered.n})"
        )
        if self.foreign_n:
            foreign = self.foreign
            low, high = foreign.interval
            labels = f" from {self.foreign_labels} held-out labels" if self.foreign_labels else ""
            text += (
                f"; answers {foreign.value:.1%} of out-of-scope stand-ins{labels} "
                f"({self.level:.0%} CI {low:.1%}-{high:.1%}, N={foreign.n})"
            )
        return text


def labels_to_vouch(target: float) -> float:
    """How many labels the held-out-label stand-ins need before they can speak for unseen
    intents at `target`.

    Take intents as exchangeable: of an unseen intent and the L held-out ones, each is equally
    likely to be the one most like the known labels, so about 1 unseen intent in L + 1 is more
    familiar than every stand-in, and nothing in the bank says how often it is answered. For
    that share to be at most 1 - target, L + 1 >= 1 / (1 - target): 33 labels at 0.97.
    """
    if target >= 1.0:
        return math.inf
    return float(max(0, math.ceil(1.0 / (1.0 - target) - 1e-9) - 1))


def similarity_weights(distances: np.ndarray) -> np.ndarray:
    """kNN vote weights: cosine similarity (1 - cosine distance), never zero."""
    return np.clip(1.0 - distances, 1e-6, None)


def _make_model(kind: StudentKind, seed: int, n: int = 10) -> Any:
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(
            n_neighbors=max(1, min(10, n)), weights=similarity_weights, metric="cosine"
        )
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


def choose_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float,
    level: float | None = DEFAULT_LEVEL,
) -> float:
    """Lowest confidence such that the answers at or above it reach `target` accuracy: its
    one-sided lower bound at `level` (None: the point estimate).

    inf when no threshold gets there (the student then always defers).
    """
    result = calibrate_threshold(confidence, correct, target, level=level)
    return result.threshold if result.achievable and result.kept_n else float("inf")


@dataclass
class _Scored:
    """Held-out scores of some rows: log P(class) and similarity to the model's training rows."""

    log_probs: np.ndarray
    similarity: np.ndarray
    labels: int = 0
    """How many labels were held out to score these rows (label hold-outs only)."""


def _fit_and_score(
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    in_scope: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    kind: StudentKind,
    seed: int,
) -> _Scored:
    names = np.asarray(classes, dtype=object)
    model = _make_model(kind, seed, len(train)).fit(x[train], names[y[train]])
    reference = x[train[in_scope[train]]]
    return _Scored(_log_probs(model, x[test], classes), nearest_similarity(reference, x[test]))


def _out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    in_scope: np.ndarray,
    kind: StudentKind,
    folds: int,
    seed: int,
) -> _Scored:
    """Every row scored by a model that did not see it (k-fold)."""
    from sklearn.model_selection import KFold

    out = _Scored(np.zeros((len(x), len(classes))), np.zeros(len(x)))
    splitter = KFold(n_splits=min(folds, len(x)), shuffle=True, random_state=seed)
    for train, test in splitter.split(x):
        scored = _fit_and_score(x, y, classes, in_scope, train, test, kind, seed)
        out.log_probs[test], out.similarity[test] = scored.log_probs, scored.similarity
    return out


def _labels_held_out(
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    in_scope: np.ndarray,
    kind: StudentKind,
    seed: int,
) -> _Scored | None:
    """Every in-scope row scored by a model trained without its label (and a few others):
    stand-ins for inputs of labels the student has never seen. None with too few labels."""
    labels = np.unique(y[in_scope])
    if len(labels) < _MIN_LABELS_TO_HOLD_OUT:
        return None
    groups = np.array_split(np.random.default_rng(seed).permutation(labels), _LABEL_GROUPS)
    rows = np.nonzero(in_scope)[0]
    out = _Scored(np.zeros((len(rows), len(classes))), np.zeros(len(rows)), len(labels))
    for group in groups:
        held = np.isin(y, group) & in_scope
        if not held.any():
            continue
        scored = _fit_and_score(
            x, y, classes, in_scope, np.nonzero(~held)[0], np.nonzero(held)[0], kind, seed
        )
        where = np.searchsorted(rows, np.nonzero(held)[0])
        out.log_probs[where], out.similarity[where] = scored.log_probs, scored.similarity
    return out


def _answer_scores(probs: np.ndarray, background: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(best class, confidence): a row whose best class is background gets confidence 0."""
    best = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    if background is not None:
        confidence = np.where(best == background, 0.0, confidence)
    return best, confidence


@dataclass
class TinyClassifier:
    """A fitted student: embedder name, sklearn model, temperature and answer thresholds."""

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
    similarity_threshold: float = float("-inf")
    """Least cosine similarity to a training example at which the student answers."""
    reference: np.ndarray | None = None
    """The training vectors similarity is measured against (None: every input is familiar)."""
    background: bool = False
    """Whether background traffic was learnt as a class (the last column of the model)."""

    @property
    def classes(self) -> list[str]:
        return [*self.labels, BACKGROUND] if self.background else list(self.labels)

    def out_of_scope_caveat(self) -> str | None:
        """Why the out-of-scope rate is not vouched for, or None when it is (see
        `labels_to_vouch`): too few labels to hold out, and no background traffic."""
        needed = labels_to_vouch(self.target_accuracy)
        if self.reference is None or self.background or len(self.labels) >= needed:
            return None
        return (
            f"{len(self.labels)} labels are too few to vouch for the out-of-scope rate at "
            f"{self.target_accuracy} ({needed:.0f}+ needed): an unseen intent close to a known "
            "label (a sibling) may be answered. Show it what to refuse: label real traffic "
            "with `distill label --out-of-scope` (the teacher marks what fits no label) or add "
            "`--background FILE`."
        )

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Calibrated P(class), one row per vector (with a last background column if learnt)."""
        return softmax(_log_probs(self.model, vectors, self.classes), self.temperature)

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        if self.reference is None:
            return np.ones(len(vectors))
        return nearest_similarity(self.reference, vectors)

    def predict_vectors(self, vectors: np.ndarray) -> list[Prediction]:
        probs = self.scores(vectors)
        best = probs.argmax(axis=1)
        similarity = self.similarity(vectors)
        out = []
        for i, row, sim in zip(best, probs, similarity, strict=True):
            if self.background and i == len(self.labels):
                label = self.labels[int(row[:-1].argmax())]
                out.append(Prediction(label, float(row[i]), False, float(sim), "background"))
                continue
            reason = "unsure" if row[i] < self.threshold else ""
            if sim < self.similarity_threshold:
                reason = reason or "unfamiliar"
            out.append(Prediction(self.labels[i], float(row[i]), not reason, float(sim), reason))
        return out

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
    **options: Any,
) -> TinyClassifier:
    """Fit on all pairs (and `background` vectors as a deferring class); pick both thresholds
    on out-of-fold predictions and out-of-scope stand-ins (see the module docstring).

    `level=None` picks on the point estimate and `familiarity=False` on confidence alone: the
    student as it was, for comparison."""
    return train_students(vectors, labels, targets=[target_accuracy], **options)[0]


def train_students(
    vectors: np.ndarray,
    labels: list[str],
    *,
    targets: list[float],
    kind: StudentKind = "logreg",
    folds: int = 5,
    seed: int = 0,
    embedder_name: str = "minilm",
    background: np.ndarray | None = None,
    level: float | None = DEFAULT_LEVEL,
    familiarity: bool = True,
) -> list[TinyClassifier]:
    """One student per target accuracy, from one set of fits (`train_student`): the model,
    its out-of-fold predictions and its stand-ins do not depend on the target; only the
    thresholds do."""
    if not targets or not all(0.0 < target <= 1.0 for target in targets):
        raise InvalidRequestError("target accuracy must be in (0, 1]", param="target_accuracy")
    names = sorted(set(labels))
    if len(labels) < 4 or len(names) < 2:
        raise InvalidRequestError(
            f"a student needs at least 4 labelled examples of 2+ labels; got {len(labels)} "
            f"examples of {len(names)} label(s)"
        )
    if BACKGROUND in names:
        raise InvalidRequestError(f"{BACKGROUND!r} is reserved for background traffic")
    bg = np.zeros((0, np.shape(vectors)[1]), np.float32) if background is None else background
    has_bg = len(bg) > 0
    classes = [*names, BACKGROUND] if has_bg else names
    x = np.vstack([np.asarray(vectors, dtype=np.float32), np.asarray(bg, dtype=np.float32)])
    y = np.asarray([names.index(label) for label in labels] + [len(names)] * len(bg))
    in_scope = np.arange(len(x)) < len(labels)
    # These fits are small: multi-threaded BLAS only adds contention (20x slower on a busy box).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # few examples of many labels is the normal few-shot case, not a regression problem
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        oof = _out_of_fold(x, y, classes, in_scope, kind, folds, seed)
        held = _labels_held_out(x, y, classes, in_scope, kind, seed) if familiarity else None
        model = _make_model(kind, seed, len(x)).fit(x, np.asarray(classes, dtype=object)[y])
    temperature = fit_temperature(oof.log_probs, y)
    bg_column = len(names) if has_bg else None
    best, confidence = _answer_scores(softmax(oof.log_probs, temperature), bg_column)
    correct = best == y
    foreign = [(confidence[~in_scope], oof.similarity[~in_scope])]
    if held is not None:
        held_confidence = _answer_scores(softmax(held.log_probs, temperature), bg_column)[1]
        foreign.append((held_confidence, held.similarity))
    return [
        _student_for(
            target,
            model=model,
            names=names,
            temperature=temperature,
            confidence=confidence,
            correct=correct,
            in_scope=in_scope,
            similarity=oof.similarity,
            foreign=foreign,
            held_labels=0 if held is None else held.labels,
            reference=x[in_scope] if familiarity else None,
            options=_StudentOptions(kind, embedder_name, level, familiarity, has_bg),
        )
        for target in targets
    ]


@dataclass(frozen=True)
class _StudentOptions:
    kind: StudentKind
    embedder_name: str
    level: float | None
    familiarity: bool
    background: bool


def _student_for(
    target_accuracy: float,
    *,
    model: Any,
    names: list[str],
    temperature: float,
    confidence: np.ndarray,
    correct: np.ndarray,
    in_scope: np.ndarray,
    similarity: np.ndarray,
    foreign: list[tuple[np.ndarray, np.ndarray]],
    held_labels: int,
    reference: np.ndarray | None,
    options: _StudentOptions,
) -> TinyClassifier:
    """The thresholds for one target, on predictions shared by every target."""
    level = options.level
    if options.familiarity:
        deferral = calibrate_deferral(
            confidence[in_scope],
            correct[in_scope],
            similarity[in_scope],
            foreign,
            target_accuracy,
            level,
        )
    else:
        deferral = confidence_only(confidence[in_scope], correct[in_scope], target_accuracy, level)
    return TinyClassifier(
        model,
        names,
        temperature,
        deferral.confidence,
        target_accuracy,
        _heldout(deferral, correct[in_scope], level, held_labels),
        options.kind,
        options.embedder_name,
        similarity_threshold=deferral.similarity,
        reference=reference,
        background=options.background,
    )


def _heldout(
    deferral: Deferral, correct: np.ndarray, level: float | None, foreign_labels: int
) -> HeldOut:
    return HeldOut(
        n=deferral.n,
        accuracy=float(correct.mean()),
        coverage=deferral.coverage,
        answered_accuracy=deferral.answered_right / deferral.answered_n
        if deferral.answered_n
        else 0.0,
        answered_n=deferral.answered_n,
        lower_bound=float(
            wilson_bound(deferral.answered_right, deferral.answered_n, level or DEFAULT_LEVEL)
        ),
        level=level or DEFAULT_LEVEL,
        foreign_n=deferral.foreign_n,
        foreign_answered=deferral.foreign_answered_n / deferral.foreign_n
        if deferral.foreign_n
        else 0.0,
        foreign_labels=foreign_labels,
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
    background = bank.background_vectors()
    student = train_student(
        matrix[rows],
        labels,
        embedder_name=bank.embedder.name,
        background=background if len(background) else None,
        **options,
    )
    student.input_name = (bank.meta().get("task") or {}).get("input_name", "Text")
    return student
