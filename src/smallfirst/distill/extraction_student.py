"""Tier 0 for extraction tasks: a span tagger that answers a flat JSON object when it is sure.

A task whose answers are flat objects of strings copied from the input (slot filling: "book
a table in paris tomorrow" -> {"city": "paris", "time": "tomorrow"}) is a tagging problem:
each input word is the beginning (B-field), inside (I-field) or outside (O) of a field's
value. The student learns the tags from the large model's answers (each value matched to
its span in the input, case aside; a pair whose values are not all found teaches nothing and
is skipped), with a logistic regression over sparse per-word features, and decodes the most
likely valid tag sequence (an I-field only continues its own field).

Its confidence is the product of the chosen tags' probabilities: the chance every tag is
right, which is what an exact answer needs. The threshold is picked on out-of-fold pairs
(each scored by a model that did not see it) so that the one-sided lower bound of the exact
accuracy of the answered ones reaches the target (`routing/thresholds.py`). An input whose
words are mostly new to the student (less familiar than nearly every training input) is
deferred whatever the confidence: a tagger is sure that words it has never seen are `O`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from threadpoolctl import threadpool_limits

from smallfirst.distill.student import choose_threshold
from smallfirst.errors import InvalidRequestError, ModelLoadError
from smallfirst.evaluate.stats import DEFAULT_LEVEL, wilson_bound

FORMAT = "smallfirst-extraction-student/1"
OUTSIDE = "O"
TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
"""Words (with inner apostrophes) and single punctuation marks."""
FAMILIARITY_QUANTILE = 0.02
"""Inputs less familiar than this share of the out-of-fold training inputs are deferred."""
MIN_PAIRS = 8
MAX_BAG = 32
"""The input's first distinct words every token sees (a long input adds no more)."""
_FLOOR = 1e-12


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def flat_strings(answer: str | None) -> dict[str, str] | None:
    """The answer as a flat object of string values, or None when it is not one."""
    if answer is None:
        return None
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return value


def bio_tags(tokens: list[Token], text: str, values: dict[str, str]) -> list[str] | None:
    """One tag per token for these field values, or None when a value is not a span of the
    input on word boundaries (case aside). A value found more than once takes its first
    occurrence not already taken by another field."""
    tags = [OUTSIDE] * len(tokens)
    starts = {token.start: i for i, token in enumerate(tokens)}
    ends = {token.end: i for i, token in enumerate(tokens)}
    lowered = text.casefold()
    for name, value in values.items():
        wanted = value.strip().casefold()
        if not wanted or len(lowered) != len(text):  # casefold changed offsets: cannot map
            return None
        span = _free_span(lowered, wanted, starts, ends, tags)
        if span is None:
            return None
        first, last = span
        tags[first] = f"B-{name}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{name}"
    return tags


def _free_span(
    text: str, wanted: str, starts: dict[int, int], ends: dict[int, int], tags: list[str]
) -> tuple[int, int] | None:
    at = text.find(wanted)
    while at >= 0:
        first, last = starts.get(at), ends.get(at + len(wanted))
        if (
            first is not None
            and last is not None
            and all(tag == OUTSIDE for tag in tags[first : last + 1])
        ):
            return first, last
        at = text.find(wanted, at + 1)
    return None


def _shape(word: str) -> str:
    shape = re.sub(r"[A-Z]+", "A", word)
    shape = re.sub(r"[a-z]+", "a", shape)
    return re.sub(r"[0-9]+", "9", shape)


def input_features(tokens: list[Token]) -> list[dict[str, float]]:
    """Each token's features and the input's words: which field a span fills depends on
    what the whole input asks (an artist to play, a playlist to add to)."""
    bag: dict[str, float] = {}
    for token in tokens:
        word = token.text.lower()
        if len(word) > 2 and len(bag) < MAX_BAG:
            bag[f"bow={word}"] = 1.0
    return [word_features(tokens, i) | bag for i in range(len(tokens))]


def word_features(tokens: list[Token], i: int) -> dict[str, float]:
    """What the tagger sees of token i: itself and its neighbours (no previous tags, so
    every token is classified independently and decoding alone joins them)."""
    word = tokens[i].text
    low = word.lower()
    out = {
        "bias": 1.0,
        f"w={low}": 1.0,
        f"shape={_shape(word)}": 1.0,
        f"p2={low[:2]}": 1.0,
        f"p3={low[:3]}": 1.0,
        f"s2={low[-2:]}": 1.0,
        f"s3={low[-3:]}": 1.0,
        f"s4={low[-4:]}": 1.0,
    }
    if word[:1].isupper():
        out["upper"] = 1.0
    if word.isdigit():
        out["digit"] = 1.0
    for offset in (-3, -2, -1, 1, 2, 3):
        j = i + offset
        neighbour = tokens[j].text.lower() if 0 <= j < len(tokens) else ("<s>" if j < 0 else "</s>")
        out[f"w{offset:+d}={neighbour}"] = 1.0
    if i > 0:
        out[f"w-1w={tokens[i - 1].text.lower()}|{low}"] = 1.0
    if i + 1 < len(tokens):
        out[f"ww+1={low}|{tokens[i + 1].text.lower()}"] = 1.0
    return out


@dataclass(frozen=True, slots=True)
class Extraction:
    values: dict[str, str]
    confidence: float
    answered: bool
    familiarity: float = 1.0
    """Share of the input's words the student saw in training."""
    reason: str = ""
    """Why it deferred: `unsure` (confidence), `unfamiliar` (new words), `repeated` (a field
    found twice: a flat object cannot hold both)."""

    @property
    def text(self) -> str:
        return orjson.dumps(self.values).decode()


@dataclass(frozen=True, slots=True)
class ExtractionHeldOut:
    """Out-of-fold quality: what the threshold was chosen on."""

    n: int
    skipped: int
    """Pairs not used: the answer was not a flat object of strings found in the input."""
    exact: float
    coverage: float
    answered_n: int
    answered_right: int
    lower_bound: float
    level: float = DEFAULT_LEVEL

    def summary(self) -> str:
        accuracy = self.answered_right / self.answered_n if self.answered_n else 0.0
        return (
            f"answers {self.coverage:.1%} of out-of-fold pairs (N={self.n}, {self.skipped} "
            f"skipped) at exact accuracy {accuracy:.3f} (lower bound {self.lower_bound:.3f} at "
            f"{self.level:.0%}, N={self.answered_n}); {self.exact:.3f} exact over all"
        )


@dataclass
class ExtractionStudent:
    """A fitted span tagger: feature vectoriser, classifier, fields and thresholds."""

    vectorizer: Any
    model: Any
    fields: list[str]
    threshold: float
    target_accuracy: float
    heldout: ExtractionHeldOut
    vocabulary: set[str] = field(default_factory=set)
    familiarity_threshold: float = 0.0

    def predict(self, texts: list[str]) -> list[Extraction]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> Extraction:
        tokens = tokenize(text)
        if not tokens:
            return Extraction({}, 0.0, False, 0.0, "unfamiliar")
        tags, confidence = _decode(self.model, self.vectorizer, tokens)
        values, repeated = _values(tokens, text, tags, self.fields)
        familiarity = _familiarity(tokens, self.vocabulary)
        reason = "repeated" if repeated else ""
        if familiarity < self.familiarity_threshold:
            reason = reason or "unfamiliar"
        if confidence < self.threshold:
            reason = reason or "unsure"
        return Extraction(values, confidence, not reason, familiarity, reason)

    def save(self, path: str | Path) -> None:
        import joblib

        state = {k: v for k, v in self.__dict__.items() if k != "heldout"}
        joblib.dump({"format": FORMAT, **state, "heldout": asdict(self.heldout)}, path)

    @classmethod
    def load(cls, path: str | Path) -> ExtractionStudent:
        """Load a student file. joblib files are pickles: load only files you trust."""
        import joblib

        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"extraction student file {path} does not exist")
        try:
            state = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(
                f"extraction student file {path} could not be read: {exc}"
            ) from None
        if not isinstance(state, dict) or state.pop("format", None) != FORMAT:
            raise ModelLoadError(f"{path} is not a smallfirst extraction student file ({FORMAT})")
        state["heldout"] = ExtractionHeldOut(**state["heldout"])
        return cls(**state)


def _familiarity(tokens: list[Token], vocabulary: set[str]) -> float:
    words = [t.text.lower() for t in tokens if t.text[:1].isalnum()]
    return sum(1 for w in words if w in vocabulary) / len(words) if words else 1.0


def _log_probs(model: Any, vectorizer: Any, tokens: list[Token]) -> tuple[np.ndarray, list[str]]:
    x = _int32(vectorizer.transform(input_features(tokens)))
    return np.log(np.clip(model.predict_proba(x), _FLOOR, 1.0)), list(model.classes_)


def _decode(model: Any, vectorizer: Any, tokens: list[Token]) -> tuple[list[str], float]:
    """The most likely valid tag sequence (Viterbi: I-x follows only B-x or I-x) and its
    probability under the per-token model."""
    log_probs, tags = _log_probs(model, vectorizer, tokens)
    allowed = np.array(
        [[_may_follow(before, after) for after in tags] for before in tags], dtype=bool
    )
    transition = np.where(allowed, 0.0, -np.inf)
    start = np.array([0.0 if not tag.startswith("I-") else -np.inf for tag in tags])
    score = start + log_probs[0]
    back = np.zeros((len(tokens), len(tags)), dtype=int)
    for i in range(1, len(tokens)):
        total = score[:, None] + transition
        back[i] = total.argmax(axis=0)
        score = total.max(axis=0) + log_probs[i]
    best = [int(score.argmax())]
    for i in range(len(tokens) - 1, 0, -1):
        best.append(int(back[i, best[-1]]))
    best.reverse()
    return [tags[k] for k in best], float(np.exp(score.max()))


def _may_follow(before: str, after: str) -> bool:
    return not after.startswith("I-") or before[2:] == after[2:]


def _values(
    tokens: list[Token], text: str, tags: list[str], fields: list[str]
) -> tuple[dict[str, str], bool]:
    """The decoded spans as an object (keys in the student's field order), and whether a
    field was found twice."""
    spans: dict[str, str] = {}
    repeated = False
    i = 0
    while i < len(tags):
        if not tags[i].startswith("B-"):
            i += 1
            continue
        name, last = tags[i][2:], i
        while last + 1 < len(tags) and tags[last + 1] == f"I-{name}":
            last += 1
        repeated = repeated or name in spans
        spans.setdefault(name, text[tokens[i].start : tokens[last].end])
        i = last + 1
    return {name: spans[name] for name in fields if name in spans}, repeated


def same_values(a: dict[str, str], b: dict[str, str]) -> bool:
    """Every field equal, case and spacing aside (as learning/verdicts.py compares strings)."""

    def norm(values: dict[str, str]) -> dict[str, str]:
        return {k: " ".join(v.casefold().split()) for k, v in values.items()}

    return norm(a) == norm(b)


@dataclass
class _Pairs:
    texts: list[str]
    values: list[dict[str, str]]
    tokens: list[list[Token]]
    tags: list[list[str]]
    skipped: int


def tagged_pairs(texts: list[str], answers: list[dict[str, str] | None]) -> _Pairs:
    """The pairs whose every value is a span of the input, tagged; the rest counted."""
    out = _Pairs([], [], [], [], 0)
    for text, values in zip(texts, answers, strict=True):
        tokens = tokenize(text)
        tags = bio_tags(tokens, text, values) if values is not None and tokens else None
        if tags is None or values is None:
            out.skipped += 1
            continue
        out.texts.append(text)
        out.values.append(values)
        out.tokens.append(tokens)
        out.tags.append(tags)
    return out


def _int32(x: Any) -> Any:
    """The sparse rows with 32-bit indices (scikit-learn's solvers reject 64-bit ones, which
    DictVectorizer may give)."""
    x.indices, x.indptr = x.indices.astype(np.int32), x.indptr.astype(np.int32)
    return x


def _fit(pairs: _Pairs, rows: np.ndarray, c: float, seed: int) -> tuple[Any, Any]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    features = [row for r in rows for row in input_features(pairs.tokens[r])]
    labels = [tag for r in rows for tag in pairs.tags[r]]
    vectorizer = DictVectorizer()
    x = _int32(vectorizer.fit_transform(features))
    if len(set(labels)) < 2:  # one tag only (every answer empty): a constant model
        from sklearn.dummy import DummyClassifier

        return vectorizer, DummyClassifier(strategy="most_frequent").fit(x, labels)
    # saga: a few passes over sparse rows; lbfgs takes ~20x as long for the same tags
    model = LogisticRegression(C=c, solver="saga", max_iter=30, random_state=seed)
    return vectorizer, model.fit(x, labels)


def train_extraction_student(
    texts: list[str],
    answers: list[dict[str, str] | None],
    *,
    target_accuracy: float = 0.95,
    level: float | None = DEFAULT_LEVEL,
    folds: int = 3,
    seed: int = 0,
    c: float = 20.0,
) -> ExtractionStudent:
    """Fit on every usable pair; pick the thresholds on out-of-fold predictions."""
    [student] = train_extraction_students(
        texts, answers, targets=[target_accuracy], level=level, folds=folds, seed=seed, c=c
    )
    return student


def train_extraction_students(
    texts: list[str],
    answers: list[dict[str, str] | None],
    *,
    targets: list[float],
    level: float | None = DEFAULT_LEVEL,
    folds: int = 3,
    seed: int = 0,
    c: float = 20.0,
) -> list[ExtractionStudent]:
    """One student per target accuracy, from one fit: only the threshold differs."""
    if not all(0.0 < target <= 1.0 for target in targets):
        raise InvalidRequestError("target accuracy must be in (0, 1]", param="target_accuracy")
    pairs = tagged_pairs(texts, answers)
    n = len(pairs.texts)
    if n < MIN_PAIRS:
        raise InvalidRequestError(
            f"an extraction student needs {MIN_PAIRS}+ answers whose values are all found in "
            f"the input; got {n} ({pairs.skipped} skipped)"
        )
    fields = sorted({name for values in pairs.values for name in values})
    confidence, correct, familiarity = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    from sklearn.model_selection import KFold

    # Small fits: multi-threaded BLAS only adds contention on a busy box.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        splitter = KFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
        for train, test in splitter.split(np.arange(n)):
            vectorizer, model = _fit(pairs, train, c, seed)
            vocabulary = _vocabulary(pairs, train)
            for r in test:
                tags, confidence[r] = _decode(model, vectorizer, pairs.tokens[r])
                values, repeated = _values(pairs.tokens[r], pairs.texts[r], tags, fields)
                correct[r] = not repeated and same_values(values, pairs.values[r])
                familiarity[r] = _familiarity(pairs.tokens[r], vocabulary)
        vectorizer, model = _fit(pairs, np.arange(n), c, seed)
    least_familiar = float(np.quantile(familiarity, FAMILIARITY_QUANTILE))
    familiar = familiarity >= least_familiar
    vocabulary = _vocabulary(pairs, np.arange(n))
    out = []
    for target in targets:
        threshold = choose_threshold(confidence[familiar], correct[familiar], target, level)
        answered = familiar & (confidence >= threshold)
        heldout = _heldout(answered, correct, pairs.skipped, level or DEFAULT_LEVEL)
        out.append(
            ExtractionStudent(
                vectorizer,
                model,
                fields,
                threshold,
                target,
                heldout,
                vocabulary,
                least_familiar,
            )
        )
    return out


def _heldout(
    answered: np.ndarray, correct: np.ndarray, skipped: int, level: float
) -> ExtractionHeldOut:
    right, answered_n = int((answered & correct).sum()), int(answered.sum())
    return ExtractionHeldOut(
        n=len(correct),
        skipped=skipped,
        exact=float(correct.mean()),
        coverage=float(answered.mean()),
        answered_n=answered_n,
        answered_right=right,
        lower_bound=float(wilson_bound(right, answered_n, level)) if answered_n else 0.0,
        level=level,
    )


def _vocabulary(pairs: _Pairs, rows: np.ndarray) -> set[str]:
    return {t.text.lower() for r in rows for t in pairs.tokens[r]}
