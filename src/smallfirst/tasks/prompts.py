"""Prompts small models get right: an explicit instruction, the closed output space spelled out,
"respond with only ...", then worked examples in exactly the format the answer must take.

Base models (`ModelConfig.style == "completion"`) get one text that ends with an answer cue
(`Label:`), so the answer is the natural continuation; chat models get a system message,
example turns and the input as the last user turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from smallfirst.tasks.examples import Example
from smallfirst.tasks.retrieval import Chunk
from smallfirst.tasks.spec import AnswerSpec, ClassifySpec, ExtractSpec, SummarizeSpec, TaskSpec
from smallfirst.types import Message

Style = Literal["chat", "completion"]
LabelFormat = Literal["bare", "json"]
"""`bare`: the label as plain text; `json`: `{"label": ...}` (for response_format backends,
whose structured output must be a JSON object)."""

CUES = {"classify": "Label", "extract": "JSON", "summarize": "Summary", "answer": "Answer"}
STYLE_WORDS = {
    "paragraph": "as one short paragraph",
    "bullets": "as bullet points, each line starting with '- '",
    "one_sentence": "in one sentence",
    "headline": "as a headline of a few words",
}


@dataclass(slots=True)
class PromptPlan:
    """What to send: a completion `prompt` or chat `messages`, plus stops for free text."""

    style: Style
    prompt: str = ""
    messages: list[Message] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)


def build_prompt(
    spec: TaskSpec,
    text: str,
    examples: list[Example],
    style: Style,
    label_format: LabelFormat = "bare",
    chunks: list[Chunk] | None = None,
    schema: dict[str, Any] | None = None,
) -> PromptPlan:
    """The prompt for one input. `schema` is the extract task's resolved JSON schema."""
    instruction = instruction_for(spec, label_format, schema)
    shots = [
        (render_input(spec, e.input), render_output(spec, e.output, label_format)) for e in examples
    ]
    query = render_input(spec, text, chunks)
    cue = CUES[spec.kind]
    free_text = spec.kind in ("summarize", "answer")
    if style == "completion":
        if spec.layout == "input_first":
            blocks = [query, f"{instruction}\n{cue}:"]
        else:
            blocks = [instruction, *(f"{i}\n{cue}: {o}" for i, o in shots), f"{query}\n{cue}:"]
        stop = free_text_stops(spec) if free_text else []
        return PromptPlan("completion", prompt="\n\n".join(blocks), stop=stop)
    if spec.layout == "input_first":
        return PromptPlan("chat", messages=[Message("user", f"{query}\n\n{instruction}")])
    messages = [Message("system", instruction)]
    for shown_input, shown_output in shots:
        messages += [Message("user", shown_input), Message("assistant", shown_output)]
    messages.append(Message("user", query))
    return PromptPlan("chat", messages=messages)


def free_text_stops(spec: TaskSpec) -> list[str]:
    """Where a base model's free-text answer ends: it would otherwise go on to invent the next
    example or repeat the instruction. Only bullet summaries may span lines."""
    if isinstance(spec, SummarizeSpec) and spec.style == "bullets":
        return ["\n\n", f"\n{spec.input_name}:"]
    return ["\n"]


def instruction_for(
    spec: TaskSpec, label_format: LabelFormat = "bare", schema: dict[str, Any] | None = None
) -> str:
    if isinstance(spec, ClassifySpec):
        parts = [_classify_instruction(spec, label_format)]
    elif isinstance(spec, ExtractSpec):
        parts = [_extract_instruction(spec, schema or spec.output_schema or {})]
    elif isinstance(spec, SummarizeSpec):
        parts = [_summarize_instruction(spec)]
    else:
        parts = [_answer_instruction(spec)]
    if spec.instructions.strip():
        parts.insert(1, spec.instructions.strip())
    return "\n".join(parts)


def _classify_instruction(spec: ClassifySpec, label_format: LabelFormat) -> str:
    noun = spec.input_name.lower()
    lines = [f"Classify the {noun} into exactly one of these labels:"]
    for label in spec.labels:
        lines.append(
            f"- {label.name}: {label.description}" if label.description else f"- {label.name}"
        )
    respond = (
        'Respond with only JSON of the form {"label": "<label>"}.'
        if label_format == "json"
        else "Respond with only the label, written exactly as in the list."
    )
    return "\n".join([*lines, respond])


def _extract_instruction(spec: ExtractSpec, schema: dict[str, Any]) -> str:
    noun = spec.input_name.lower()
    lines = [f"Extract these fields from the {noun}:"]
    for key, prop in schema.get("properties", {}).items():
        about = prop.get("description") or prop.get("title") or ""
        kind = _type_word(prop)
        lines.append(f"- {key} ({kind}){': ' + about if about and about != key.title() else ''}")
    lines.append(
        "Copy values exactly as they appear in the text. Leave out (or set to null) a field "
        "the text does not mention."
    )
    lines.append("Respond with only a JSON object with these keys.")
    return "\n".join(lines)


def _type_word(prop: dict[str, Any]) -> str:
    kinds = [prop.get("type")] if "type" in prop else [p.get("type") for p in prop.get("anyOf", [])]
    words = [str(k) for k in kinds if k and k != "null"]
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    return " or ".join(words) or "value"


def _summarize_instruction(spec: SummarizeSpec) -> str:
    noun = spec.input_name.lower()
    focus = f", focusing on {spec.focus}" if spec.focus.strip() else ""
    return (
        f"Summarize the {noun} {STYLE_WORDS[spec.style]}, in at most {spec.max_words} words"
        f"{focus}. Use only facts stated in the {noun}.\nRespond with only the summary."
    )


def _answer_instruction(spec: AnswerSpec) -> str:
    return (
        "Answer the question using only the numbered passages. Cite the passages you used "
        f"by number, like [1]. Use at most {spec.max_words} words. If the passages do not "
        f"contain the answer, respond with exactly: {spec.unknown_answer}\n"
        "Respond with only the answer."
    )


def render_input(spec: TaskSpec, text: str, chunks: list[Chunk] | None = None) -> str:
    """The input as the prompt shows it; `answer` puts its numbered passages first."""
    line = f"{spec.input_name}: {text.strip()}"
    if not chunks:
        return line
    passages = "\n".join(f"[{i}] {c.text.strip()}" for i, c in enumerate(chunks, start=1))
    return f"Passages:\n{passages}\n{line}"


def render_output(spec: TaskSpec, output: Any, label_format: LabelFormat = "bare") -> str:
    """An example's output exactly as the model must write its own."""
    if spec.kind == "classify" and label_format == "json":
        return json.dumps({"label": str(output)}, ensure_ascii=False)
    if spec.kind == "extract":
        return json.dumps(output, ensure_ascii=False)
    return str(output).strip()
