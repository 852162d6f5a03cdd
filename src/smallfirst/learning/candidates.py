"""The cheaper policies a task could move to, each with its quality on held-out evidence.

A candidate's quality is what the client would get: agreement with the large model over
held-out requests, where a request the student defers is served by the next rung (the large
model agrees with itself; the small model as its shadow comparisons say). Bounds are one-sided
Wilson bounds at `learn.confidence` (evaluate/stats.py).

- `small`: the small model for every request, on shadow and audit comparisons (nothing is
  fitted, so every comparison is held out).
- `student`: a tier-0 student (distill/student.py) trained on the (input, large answer)
  pairs of a closed-label task, scored by cross-fitting (`cross_fitted`).
- `student` on a JSON task: an extraction student (distill/extraction_student.py), a span
  tagger, when most large answers are flat objects of strings found in the input; scored the
  same way, an answer right when every field equals the large one (verdicts.py).

Why cross-fitting and not a held-out tail: once a task is served below large, the newest
pairs are mostly the inputs the student deferred plus a few audits of its answers, each
standing for `1 / audit_rate` requests, so a tail of them has a tiny effective sample and
no candidate answering more could ever prove itself (a task stalled at its first promotion).
Scoring every pair once, by a student that never saw it, uses all the evidence: the
uniform sample the large model answered before the first promotion, every deferral and
every audit.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from smallfirst.config import LearnConfig
from smallfirst.distill.extraction_student import (
    ExtractionStudent,
    bio_tags,
    flat_strings,
    tokenize,
    train_extraction_students,
)
from smallfirst.distill.student import TinyClassifier, train_students
from smallfirst.embeddings import Embedder
from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.stats import Rate, wilson_bound
from smallfirst.learning.cases import Case, label_of
from smallfirst.learning.records import Estimate, ServeKind
from smallfirst.learning.verdicts import compare

CROSS_FOLDS = 4
"""Students per estimate: each learns from three quarters of the pairs and answers the rest."""
MIN_PAIRS = 20
"""Fewer pairs than this leave a fold too few examples to learn from."""
MAX_PAIRS = 20_000
"""The newest pairs a pass uses (training time grows with them; old traffic matters least)."""
MAX_EXTRACTION_PAIRS = 5_000
"""An extraction student fits per word, so fewer pairs already mean many examples."""
MIN_AUDIT_RATE = 0.01
"""A promoted policy is audited at least this often (learner.py), so it can be demoted."""
S = TypeVar("S", TinyClassifier, ExtractionStudent)
MIN_SPAN_SHARE = 0.5
"""An extraction student is offered when at least this share of the large answers are flat
objects of strings found in the input (the rest it cannot learn from)."""


@dataclass
class Candidate:
    serve: ServeKind
    rungs: list[str]
    estimate: Estimate
    share_below_large: float
    """Share of the held-out requests served below the large model."""
    student: TinyClassifier | ExtractionStudent | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.student is None:
            return self.serve
        kind = "extraction student" if isinstance(self.student, ExtractionStudent) else "student"
        return kind + "".join(f" -> {rung}" for rung in self.rungs)

    @property
    def cheapness(self) -> tuple[float, float]:
        """Most traffic below large first; then most of it answered by a student ($0)."""
        return (self.share_below_large, self.share_below_large if self.student else 0.0)


def rate_estimate(successes: int, n: int, level: float) -> Estimate:
    rate = Rate(successes, n, level)
    return Estimate(n=n, agreement=rate.value, lower=rate.lower, upper=rate.upper)


def weighted_estimate(good: np.ndarray, weights: np.ndarray, level: float) -> Estimate:
    """Agreement over requests that stand for `weights` requests each, with Wilson bounds
    at Kish's effective sample size (sum w)^2 / sum w^2: a few heavily weighted requests
    prove less than as many plain ones. `n` stays the number of requests compared."""
    total = float(weights.sum())
    if total == 0:
        return Estimate(n=0, agreement=0.0, lower=0.0, upper=1.0)
    p = float((weights * good).sum()) / total
    n_eff = total**2 / float((weights**2).sum())
    lower = float(wilson_bound(p * n_eff, n_eff, level))
    upper = float(wilson_bound(p * n_eff, n_eff, level, "upper"))
    return Estimate(n=len(good), agreement=p, lower=lower, upper=upper)


def request_weights(held: list[Case], config: LearnConfig) -> np.ndarray:
    """How many live requests each held-out request stands for. Once a task is served below
    large, the requests the large model still answers are mostly the ones the student
    deferred: the inputs it answers reach the held-out set only through audits, one in
    `1 / audit_rate`. Unweighted, the held-out set under-represents exactly the answers
    that can be wrong, and the estimate flatters every candidate after the first promotion;
    weighting each audited request by the inverse of its audit rate (Horvitz-Thompson)
    makes it stand for the traffic again."""
    audit = max(config.audit_rate, MIN_AUDIT_RATE)
    return np.array([1 / audit if case.audited else 1.0 for case in held])


def more_needed(estimate: Estimate, target: float, level: float) -> int | None:
    """How many more comparisons at the current agreement would lift the lower bound to the
    target; None when the agreement itself is not above the target (more will not help)."""
    p = estimate.agreement
    if p <= target:
        return None
    low, high = max(estimate.n, 1), max(estimate.n, 1) * 2
    while wilson_bound(p * high, high, level) < target:
        low, high = high, high * 2
        if high > 10**9:
            return None
    while low < high:
        mid = (low + high) // 2
        if wilson_bound(p * mid, mid, level) >= target:
            high = mid
        else:
            low = mid + 1
    return max(0, high - estimate.n)


def small_candidate(cases: list[Case], small: str, level: float) -> Candidate | None:
    compared = [
        case
        for case in cases
        if case.trusted and case.agree is not None and case.small_model == small
    ]
    if not compared:
        return None
    agreed = sum(1 for case in compared if case.agree)
    return Candidate("small", [small], rate_estimate(agreed, len(compared), level), 1.0)


ANSWER_TARGETS = (0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.92, 0.9, 0.875, 0.85, 0.8, 0.75, 0.7)
"""Accuracies a student may keep on the inputs it answers (one threshold each, one fit)."""


def answer_targets(target: float) -> list[float]:
    """The answered accuracies tried. A policy's agreement counts the deferred requests too
    (the large model answers them): it is 1 - coverage x (1 - answered agreement), so a
    student answering more at less than the target can meet it, and so can one answering
    less at more. The second matters when the large model's own answers are noisy: no
    student agrees with noise, so at the target itself it has no errors left to spend."""
    return sorted({target, *ANSWER_TARGETS}, reverse=True)


def pick_student(students: list[Any], held_n: int, target: float, level: float) -> Any:
    """The one student the held-out requests will judge, chosen on the training folds alone
    (each student's `heldout` is out-of-fold): the one answering most whose out-of-fold
    policy agreement would prove the target over `held_n` requests; failing that, the one
    with the highest agreement. Choosing on the folds keeps the held-out bound honest: it
    judges one student, not the best of many on the same requests."""
    needed = agreement_needed(held_n, target, level)
    proven = [s for s in students if fold_agreement(s) >= needed]
    if proven:
        return max(proven, key=lambda s: s.heldout.coverage)
    return max(students, key=fold_agreement)


def fold_agreement(student: TinyClassifier | ExtractionStudent) -> float:
    """Out-of-fold agreement of the student as a policy: its answers, and its deferrals
    (the large model answers those, agreeing with itself)."""
    held = student.heldout
    if isinstance(student, ExtractionStudent):
        right = student.heldout.answered_right
    else:
        right = round(student.heldout.answered_accuracy * held.answered_n)
    wrong = held.answered_n - right
    return 1 - wrong / held.n if held.n else 0.0


def agreement_needed(n: int, target: float, level: float) -> float:
    """The least agreement over `n` comparisons whose lower bound meets `target`."""
    low, high = target, 1.0
    if wilson_bound(n, n, level) < target:
        return 1.0 + 1e-9  # not even perfect agreement proves it at this n
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (low, mid) if wilson_bound(mid * n, n, level) >= target else (mid, high)
    return high


def student_candidates(
    cases: list[Case],
    config: LearnConfig,
    embedder: Embedder,
    large: str,
    small: str | None,
) -> tuple[list[Candidate], str | None]:
    """Students deferring to the large model (and to the small one, where shadow comparisons
    cover the held-out requests); or none and why."""
    pairs = [case for case in cases if case.trusted and case.input and case.reference]
    pairs = pairs[-MAX_PAIRS:]
    if len(pairs) < MIN_PAIRS:
        return [], f"a student needs at least {MIN_PAIRS} (input, large answer) pairs"
    vectors = embedder.encode([case.input or "" for case in pairs])
    labels = [label_of(case.reference or "") for case in pairs]

    def fit(rows: np.ndarray) -> TinyClassifier:
        students = train_students(
            vectors[rows],
            [(pairs[i].reference or "").strip() for i in rows],
            targets=answer_targets(config.target),
            embedder_name=embedder.name,
            level=config.confidence,
        )
        return pick_student(students, len(pairs), config.target, config.confidence)

    def score(student: TinyClassifier, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        predictions = student.predict_vectors(vectors[rows])
        answered = np.array([p.answered for p in predictions], dtype=bool)
        right = np.array(
            [label_of(p.label) == labels[i] for p, i in zip(predictions, rows, strict=True)],
            dtype=bool,
        )
        return answered, right

    try:
        student, answered, right = cross_fitted(pairs, fit, score)
    except InvalidRequestError as exc:  # one label so far, or too few examples
        return [], f"no student yet: {exc.message}"
    return _student_policies(pairs, answered, right, large, small, student, config), None


def extraction_candidates(
    cases: list[Case], config: LearnConfig, large: str, small: str | None
) -> tuple[list[Candidate], str | None]:
    """Extraction students deferring to the large model (and to the small one, where shadow
    comparisons cover the held-out requests); or none and why."""
    pairs = [case for case in cases if case.trusted and case.input and case.reference]
    pairs = pairs[-MAX_EXTRACTION_PAIRS:]
    spans = sum(1 for case in pairs if _spans_of_input(case.input or "", case.reference))
    if not pairs or spans < MIN_SPAN_SHARE * len(pairs):
        return [], (
            f"no extraction student: {spans} of {len(pairs)} large answers are flat objects "
            "of strings found in the input"
        )
    if len(pairs) < MIN_PAIRS:
        return [], f"a student needs at least {MIN_PAIRS} (input, large answer) pairs"

    def fit(rows: np.ndarray) -> ExtractionStudent:
        students = train_extraction_students(
            [pairs[i].input or "" for i in rows],
            [flat_strings(pairs[i].reference) for i in rows],
            targets=answer_targets(config.target),
            level=config.confidence,
        )
        return pick_student(students, len(pairs), config.target, config.confidence)

    def score(student: ExtractionStudent, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        predictions = student.predict([pairs[i].input or "" for i in rows])
        answered = np.array([p.answered for p in predictions], dtype=bool)
        right = np.array(
            [
                compare("json", p.text, pairs[i].reference or "").agree is True
                for p, i in zip(predictions, rows, strict=True)
            ],
            dtype=bool,
        )
        return answered, right

    try:
        student, answered, right = cross_fitted(pairs, fit, score)
    except InvalidRequestError as exc:
        return [], f"no extraction student yet: {exc.message}"
    return _student_policies(pairs, answered, right, large, small, student, config), None


def fold_of(case: Case) -> int:
    """A request's fold, fixed by its id: the same request is held out by the same fold on
    every pass, whatever else the evidence holds."""
    return zlib.crc32(case.request_id.encode()) % CROSS_FOLDS


def cross_fitted(
    pairs: list[Case],
    fit: Callable[[np.ndarray], S],
    score: Callable[[S, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> tuple[S, np.ndarray, np.ndarray]:
    """The student to serve (`fit` on every pair) and, for every pair, whether a student
    fitted the same way without it answered it and was right: the estimate is of the
    procedure that made the served student, on requests its scorer never saw, which is
    what cross-validation measures (each scoring student learnt from a quarter less, so
    if anything the estimate is low)."""
    folds = np.array([fold_of(case) for case in pairs])
    answered = np.zeros(len(pairs), dtype=bool)
    right = np.zeros(len(pairs), dtype=bool)
    for fold in range(CROSS_FOLDS):
        held = np.flatnonzero(folds == fold)
        if len(held):
            answered[held], right[held] = score(fit(np.flatnonzero(folds != fold)), held)
    return fit(np.arange(len(pairs))), answered, right


def _student_policies(
    held: list[Case],
    answered: np.ndarray,
    right: np.ndarray,
    large: str,
    small: str | None,
    student: Any,
    config: LearnConfig,
) -> list[Candidate]:
    """A scored student as policies: deferring to large (a deferral counts as agreeing:
    large answers it) and, with a small model, deferring to small."""
    level = config.confidence
    weights = request_weights(held, config)
    estimate = weighted_estimate((answered & right) | ~answered, weights, level)
    share = float((weights * answered).sum() / weights.sum())
    out = [Candidate("student", [large], estimate, share, student)]
    if small is not None:
        out.extend(_student_then_small(held, answered, right, small, student, weights, level))
    return out


def _spans_of_input(text: str, answer: str | None) -> bool:
    values = flat_strings(answer)
    return values is not None and bio_tags(tokenize(text), text, values) is not None


def _student_then_small(
    held: list[Case],
    answered: np.ndarray,
    right: np.ndarray,
    small: str,
    student: TinyClassifier | ExtractionStudent,
    weights: np.ndarray,
    level: float,
) -> list[Candidate]:
    """Deferrals served by the small model: scored on the held-out requests whose small
    answer was compared with the large one (its shadow comparisons)."""
    compared = np.array([case.agree is not None and case.small_model == small for case in held])
    if not compared.any():
        return []
    small_right = np.array([bool(case.agree) for case in held])
    good = (answered & right) | (~answered & small_right)
    estimate = weighted_estimate(good[compared], weights[compared], level)
    return [Candidate("student", [small], estimate, 1.0, student)]
