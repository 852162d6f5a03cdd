"""What the teacher is asked, and how its answer becomes a bank row.

The teacher sees the task's instructions, the closed output space (labels or schema) and the
input; nothing else, so the pairs it produces can be replayed to any student. Its answer is
normalised (a label matched case-insensitively, JSON validated against the schema) before it
is stored: a malformed answer is a failed attempt, never a silent bad training example.
"""

from __future__ import annotations

import json
import re
from typing import Any

from smallfirst.tasks.spec import ClassifySpec, ExtractSpec, TaskSpec
from smallfirst.types import Message


class MalformedAnswer(ValueError):
    """The teacher answered, but not in the task's output space."""


def task_summary(spec: TaskSpec) -> dict[str, Any]:
    """The parts of a spec a bank keeps, so students and exports can rebuild the prompt."""
    summary: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "instructions": spec.instructions,
        "input_name": spec.input_name,
    }
    if isinstance(spec, ClassifySpec):
        summary["labels"] = spec.label_names
    if isinstance(spec, ExtractSpec) and spec.output_schema is not None:
        summary["schema"] = spec.output_schema
    return summary


def system_prompt(summary: dict[str, Any]) -> str:
    """The instruction shared by the teacher prompt and the fine-tuning export."""
    kind = summary["kind"]
    input_name = summary.get("input_name", "Text")
    if kind == "classify":
        labels = ", ".join(summary["labels"])
        head = f"Classify the {input_name.lower()} into exactly one of these labels: {labels}."
        tail = "Answer with the label only."
    elif kind == "extract":
        head = f"Extract the fields of this JSON schema from the {input_name.lower()}:"
        head += " " + json.dumps(summary.get("schema", {}))
        tail = "Answer with one JSON object only."
    elif kind == "summarize":
        head = f"Summarize the {input_name.lower()}."
        tail = "Answer with the summary only."
    else:
        head = f"Answer the {input_name.lower()}."
        tail = "Answer briefly."
    extra = summary.get("instructions", "").strip()
    return " ".join(part for part in (head, extra, tail) if part)


NONE = "none"
"""What a teacher allowed to (`out_of_scope=True`) answers for an input that fits no label."""


def teacher_messages(
    summary: dict[str, Any], text: str, *, out_of_scope: bool = False
) -> list[Message]:
    """The teacher's prompt. `out_of_scope` (classify tasks): it may answer `none` for an input
    that fits no label (real traffic holds requests that are not this task's job)."""
    input_name = summary.get("input_name", "Text")
    system = system_prompt(summary)
    if out_of_scope and summary["kind"] == "classify":
        system += f" If the {input_name.lower()} fits none of the labels, answer {NONE}."
    return [Message("system", system), Message("user", f"{input_name}: {text}")]


def says_none(summary: dict[str, Any], answer: str) -> bool:
    """Whether a classify answer is `none` (and `none` is not one of the task's own labels)."""
    if summary["kind"] != "classify" or _norm(answer) != NONE:
        return False
    return NONE not in {_norm(label) for label in summary["labels"]}


def parse_answer(summary: dict[str, Any], answer: str) -> tuple[str, str | None]:
    """(output to store, label or None); raises MalformedAnswer outside the output space."""
    text = answer.strip()
    if not text:
        raise MalformedAnswer("empty answer")
    if summary["kind"] == "classify":
        label = match_label(text, summary["labels"])
        return label, label
    if summary["kind"] == "extract":
        return _parse_json(text, summary.get("schema")), None
    return text, None


def match_label(text: str, labels: list[str]) -> str:
    """The label the answer names: exact, then case/punctuation-insensitive, then a unique one
    contained in the answer (teachers often add "Label: ...")."""
    if text in labels:
        return text
    norm = {_norm(label): label for label in labels}
    key = _norm(text)
    if key in norm:
        return norm[key]
    found = [label for n, label in norm.items() if n and re.search(rf"\b{re.escape(n)}\b", key)]
    if len(found) == 1:
        return found[0]
    raise MalformedAnswer(f"answer {text[:80]!r} is not one of the {len(labels)} labels")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _parse_json(text: str, schema: dict[str, Any] | None) -> str:
    body = text.removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise MalformedAnswer(f"answer is not JSON: {exc}") from None
    if schema is not None:
        from jsonschema import Draft202012Validator

        error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
        if error is not None:
            raise MalformedAnswer(f"answer does not match the schema: {error.message}")
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
