"""One request's evidence, merged: what was asked, the reference answer, and how the cheaper
answer compared with it.

A request can have several evidence rows (served, then shadowed; an audit and a client's
feedback). Feedback outranks every other verdict for its request: a right answer replaces the
reference, and a correct/incorrect flag settles the cheaper answer (served below large) or
refutes the reference (served large, then the large answer teaches nothing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import orjson

from smallfirst.learning.records import Evidence, Feedback, OutputKind

COMPARED = ("shadow", "audit", "cascade")
"""Sources that carry a cheaper answer beside the reference."""


@dataclass(slots=True)
class Case:
    request_id: str
    ts: float
    input: str | None
    reference: str | None
    """The large model's answer, or the right answer a client gave."""
    small_model: str | None = None
    small_answer: str | None = None
    agree: bool | None = None
    """Was the cheaper answer as good as the reference? None: no comparison."""
    audited: bool = False
    """Served below large and checked against the large model (or rated by the client)."""
    trusted: bool = True
    """False when feedback says the large answer (the reference) was wrong."""


def same_answer(kind: OutputKind | None, answer: str | None, reference: str | None) -> bool | None:
    """Labels compare exactly (case and outer spaces aside), JSON by value; free text has no
    exact comparison (a judge decides it), so None."""
    if answer is None or reference is None:
        return None
    if kind == "label":
        return label_of(answer) == label_of(reference)
    if kind in ("json", "tool_calls"):
        try:
            return bool(orjson.loads(answer) == orjson.loads(reference))
        except orjson.JSONDecodeError:
            return answer.strip() == reference.strip()
    return None


def label_of(answer: str) -> str:
    return answer.strip().casefold()


def output_kind(evidence: list[Evidence]) -> OutputKind | None:
    """The kind most of a task's evidence says its answers are."""
    counts = Counter(item.output_kind for item in evidence)
    return counts.most_common(1)[0][0] if counts else None


def build_cases(
    evidence: list[Evidence], feedback: list[Feedback], kind: OutputKind | None
) -> list[Case]:
    """One case per request, oldest first; `feedback` may cover other tasks too."""
    cases: dict[str, Case] = {}
    for item in evidence:
        case = cases.get(item.request_id)
        if case is None:
            case = cases[item.request_id] = Case(item.request_id, item.ts, item.input, None)
        _absorb(case, item)
    for rating in feedback:
        case = cases.get(rating.request_id)
        if case is not None:
            _rated(case, rating, kind)
    return sorted(cases.values(), key=lambda case: case.ts)


def _absorb(case: Case, item: Evidence) -> None:
    case.input = case.input or item.input
    if item.source == "feedback":  # the client's word: it decides, whatever came before
        case.reference = item.large_answer or case.reference
        if item.agree is not None:
            case.agree = item.agree
        return
    if case.reference is None and item.large_answer is not None:
        case.reference = item.large_answer
    if item.source in COMPARED and item.small_answer is not None:
        case.small_model, case.small_answer = item.small_model, item.small_answer
        if item.agree is not None:
            case.agree = item.agree
    if item.source == "audit":
        case.audited = True


def _rated(case: Case, rating: Feedback, kind: OutputKind | None) -> None:
    correct = rating.correct
    if correct is None and rating.score is not None:
        correct = rating.score >= 0.5
    if rating.answer is not None:
        case.reference, case.trusted = rating.answer, True
        verdict = same_answer(kind, case.small_answer, rating.answer)
        case.agree = verdict if verdict is not None else case.agree
    elif correct is not None and case.audited:
        case.agree = correct  # the client was served the cheaper answer and rated it
    elif correct is False:
        case.trusted = False  # the large answer the client got was wrong
