"""Is a cheaper answer as good as the reference? Closed outputs are compared exactly, free
text by a judge model.

What a request asks for decides how its answers compare (`output_kind`):

- `tool_calls`: the request offers tools. Calls match by name and parsed arguments.
- `json`: `response_format` is `json_object` or `json_schema`. Field by field: every leaf of
  the parsed object is a field named by its path (`a.b`); a list is one field, compared in
  order. The score is the field-level F1 against the reference; agreement is every field
  equal. A cheaper answer that is not valid JSON disagrees (the client could not parse it).
- `label`: the request reads as a closed question (`CLOSED_QUESTION`: classify, label,
  intent, category, sentiment, "one of", yes or no, ...) and the reference answer, when
  known, is one line of at most `LABEL_MAX_CHARS` characters. Equal after case, spacing,
  quotes and trailing punctuation are normalised.
- `text`: anything else. Only a judge model can tell (`judge`); without one the verdict is
  None, and a task is never moved down on it.

Values inside JSON and tool arguments compare like labels when they are strings (case and
spacing aside) and by value when they are numbers (`1 == 1.0`, but `true != 1`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from smallfirst.evaluate.judge import SOURCE_CHARS
from smallfirst.learning.records import OutputKind
from smallfirst.models.base import Provider
from smallfirst.models.pricing import ModelPrice
from smallfirst.routing.checks import prompt_text
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    GenerationParams,
    Message,
    ToolCall,
    Usage,
)

LABEL_MAX_CHARS = 64
CLOSED_QUESTION = re.compile(
    r"\b(classify|classification|categori[sz]e|category|categories|label|labels|intent|"
    r"sentiment|one of|one word|single word|yes or no|true or false)\b",
    re.IGNORECASE,
)
"""Words that make a prompt a closed question: its answer is one of a few known values."""


@dataclass(slots=True)
class Verdict:
    agree: bool | None
    """The cheaper answer is at least as good as the reference; None: not known."""
    score: float | None
    """Graded, in [0, 1]: field-level F1, or the judge's average preference."""
    detail: str
    cost_usd: float = 0.0
    """What reaching the verdict cost (a judge's calls)."""
    usage: Usage | None = None
    """The judge's tokens over both of its calls."""


# -- what an answer is ---------------------------------------------------------------------


def output_kind(request: ChatRequest | CompletionRequest, answer: str | None = None) -> OutputKind:
    """How answers to `request` compare; `answer` (the reference, when known) must look like
    a label for a closed question to compare as one."""
    params = request.params
    if params.tools:
        return "tool_calls"
    if params.json_object or params.json_schema is not None:
        return "json"
    if _closed_question(request) and (answer is None or _label_shaped(answer)):
        return "label"
    return "text"


def _closed_question(request: ChatRequest | CompletionRequest) -> bool:
    if isinstance(request, CompletionRequest):
        return bool(CLOSED_QUESTION.search(request.prompt))
    return any(CLOSED_QUESTION.search(m.content) for m in request.messages if m.role != "assistant")


def _label_shaped(answer: str) -> bool:
    text = answer.strip()
    return 0 < len(text) <= LABEL_MAX_CHARS and "\n" not in text


def answer_text(text: str | None, tool_calls: list[ToolCall] | None = None) -> str:
    """An answer as stored and compared: its tool calls as a JSON list of `{name,
    arguments}` when it made any, else its text."""
    if tool_calls:
        calls = [{"name": call.name, "arguments": call.arguments} for call in tool_calls]
        return orjson.dumps(calls).decode()
    return text or ""


# -- closed outputs ------------------------------------------------------------------------


def compare(kind: OutputKind, small: str, large: str) -> Verdict:
    """The cheaper answer `small` against the reference `large`, for a closed output kind;
    free text gets no verdict here (see `judge`)."""
    if kind == "label":
        same = normalize_label(small) == normalize_label(large)
        detail = "same label" if same else f"label {_short(small)} != {_short(large)}"
        return Verdict(same, float(same), detail)
    if kind == "json":
        return _compare_json(small, large)
    if kind == "tool_calls":
        return _compare_tool_calls(small, large)
    return Verdict(None, None, "free text: only a judge model can compare it")


def normalize_label(text: str) -> str:
    """Case, spacing, surrounding quotes and trailing punctuation aside."""
    text = " ".join(text.lower().split()).strip("\"'` ")
    return text.rstrip(".!?;:,").strip("\"'` ")


def _compare_json(small: str, large: str) -> Verdict:
    try:
        reference = orjson.loads(large)
    except orjson.JSONDecodeError:
        return Verdict(None, None, "the reference answer is not valid JSON")
    try:
        candidate = orjson.loads(small)
    except orjson.JSONDecodeError as exc:
        return Verdict(False, 0.0, f"not valid JSON: {exc}")
    return _fields_verdict(dict(_fields(candidate)), dict(_fields(reference)))


def _fields_verdict(small: dict[str, Any], large: dict[str, Any]) -> Verdict:
    matched = [path for path, value in small.items() if path in large and same(value, large[path])]
    if not small and not large:
        return Verdict(True, 1.0, "both empty")
    precision = len(matched) / len(small) if small else 0.0
    recall = len(matched) / len(large) if large else 0.0
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    agree = len(matched) == len(small) == len(large)
    if agree:
        return Verdict(True, 1.0, f"all {len(large)} field(s) equal")
    differing = sorted((set(small) | set(large)) - set(matched))
    shown = ", ".join(name or "(the value)" for name in differing[:5])
    more = f" and {len(differing) - 5} more" if len(differing) > 5 else ""
    return Verdict(False, f1, f"{len(differing)} field(s) differ: {shown}{more}")


def _fields(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a parsed JSON value by path; an object's keys nest, anything else is a leaf."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _fields(inner, f"{path}.{key}" if path else str(key))
    else:
        yield path, value


def same(a: Any, b: Any) -> bool:
    """JSON values equal as the module docstring says: strings like labels, numbers by value
    (a bool is never a number), containers element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return normalize_label(a) == normalize_label(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def _compare_tool_calls(small: str, large: str) -> Verdict:
    reference, candidate = tool_calls_of(large), tool_calls_of(small)
    if reference is None and candidate is None:
        return Verdict(None, None, "neither answer called a tool: free text")
    if reference is None or candidate is None:
        which = "only the reference" if candidate is None else "only the cheaper answer"
        return Verdict(False, 0.0, f"{which} called a tool")
    unmatched = list(reference)
    matched = 0
    for name, arguments in candidate:
        for index, (other_name, other_arguments) in enumerate(unmatched):
            if name == other_name and same(arguments, other_arguments):
                matched += 1
                del unmatched[index]
                break
    agree = matched == len(candidate) == len(reference)
    precision, recall = matched / len(candidate), matched / len(reference)
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    if agree:
        return Verdict(True, 1.0, f"the same {len(reference)} call(s)")
    names = ", ".join(name for name, _ in candidate) or "none"
    wanted = ", ".join(name for name, _ in reference)
    return Verdict(False, f1, f"{matched} of {len(reference)} call(s) match ({names} vs {wanted})")


def tool_calls_of(answer: str) -> list[tuple[str, Any]] | None:
    """(name, parsed arguments) of each call in an `answer_text` with calls; None when the
    answer is text. Arguments that are not valid JSON stay the text they were."""
    try:
        calls = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(calls, list) or not calls:
        return None
    if not all(isinstance(call, dict) and "name" in call for call in calls):
        return None
    return [(str(call["name"]), _arguments(call.get("arguments"))) for call in calls]


def _arguments(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# -- free text: a judge model, pairwise ----------------------------------------------------

JUDGE_SYSTEM = (
    "You compare two answers to the same request. Judge which one answers it better: correct, "
    "complete and faithful to the request. Length and style do not matter. Reply with one "
    "letter: A if answer A is better, B if answer B is better, T if they are equally good."
)
JUDGE_MAX_TOKENS = 8
ANSWER_CHARS = 4000
_LEADING = re.compile(r"^\W*(A|B|T|TIE)\b", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:answer|option)\s*\(?([AB])\)?\b", re.IGNORECASE)
_TIE = re.compile(r"\b(tie|equal|equally|same|both)\b", re.IGNORECASE)


def judge_messages(question: str, first: str, second: str) -> list[Message]:
    body = (
        f"Request:\n{question[:SOURCE_CHARS]}\n\nAnswer A:\n{first[:ANSWER_CHARS]}\n\n"
        f"Answer B:\n{second[:ANSWER_CHARS]}\n\nWhich answer is better? Reply A, B or T."
    )
    return [Message("system", JUDGE_SYSTEM), Message("user", body)]


def judge_request(question: str, first: str, second: str) -> ChatRequest:
    params = GenerationParams(max_tokens=JUDGE_MAX_TOKENS, temperature=0.0)
    return ChatRequest(judge_messages(question, first, second), params)


def parse_preference(reply: str) -> str | None:
    """`A`, `B` or `T` (tie) from a judge's reply; None when it says none of them."""
    text = reply.strip()
    found = _LEADING.match(text)
    if found:
        return found.group(1).upper()[0]
    named = _NAMED.search(text)
    if named:
        return named.group(1).upper()
    return "T" if _TIE.search(text) else None


async def judge(
    judge_provider: Provider,
    price: ModelPrice,
    request: ChatRequest | CompletionRequest,
    small: str,
    large: str,
) -> Verdict:
    """Ask the judge twice, the cheaper answer first and then second (one after the other),
    so a judge that favours a position cancels out; the cheaper answer agrees when it is at
    least as good both times.
    A failed or unreadable judge call gives no verdict (and says why); whatever the judge
    answered is priced at `price`."""
    question = prompt_text(request)
    usage = Usage()
    replies: list[str] = []
    for first, second in ((small, large), (large, small)):
        try:
            reply = await judge_provider.chat(judge_request(question, first, second))
        except Exception as exc:  # a judge that fails gives no verdict, never an error
            detail = f"judge failed: {type(exc).__name__}: {exc}"
            return Verdict(None, None, detail, price.cost(usage), usage)
        usage.input_tokens += reply.usage.input_tokens
        usage.output_tokens += reply.usage.output_tokens
        replies.append(reply.text)
    cost = price.cost(usage)
    as_a, as_b = (parse_preference(reply) for reply in replies)
    if as_a is None or as_b is None:
        said = " / ".join(_short(reply) for reply in replies)
        return Verdict(None, None, f"judge reply not understood: {said}", cost, usage)
    # the points the cheaper answer earns as A, then as B
    points = ({"A": 1.0, "T": 0.5, "B": 0.0}[as_a], {"B": 1.0, "T": 0.5, "A": 0.0}[as_b])
    agree = min(points) >= 0.5
    detail = f"judge: {as_a} with the cheaper answer as A, {as_b} with it as B"
    return Verdict(agree, sum(points) / 2, detail, cost, usage)
