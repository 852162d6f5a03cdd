"""Training pairs in exactly the prompt the task sends the fine-tuned model at serving time.

A llama.cpp model is served completion-style (`ModelConfig.style`), zero-shot (the adapter
replaces the examples), so each pair is `build_prompt(spec, input, [], "completion")` followed
by the answer as the task's output constraint lets the model write it: a label or summary
after a space (the label grammar allows one and free text strips it), a JSON object straight
after the cue (the JSON grammar starts at `{`). The text is tokenized by llama.cpp itself, so
the token ids are the ones the served model sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smallfirst.distill.bank import Example, ExampleBank
from smallfirst.distill.prompts import task_summary
from smallfirst.errors import InvalidRequestError
from smallfirst.tasks import Task
from smallfirst.tasks.prompts import build_prompt, render_output
from smallfirst.tasks.spec import TaskSpec, parse_spec

SERVED_KINDS = ("classify", "extract", "summarize")
"""`answer` is left out: its prompts carry retrieved passages the bank does not keep."""


@dataclass(frozen=True, slots=True)
class Pair:
    prompt: str
    answer: str


def bank_task(bank: ExampleBank, spec: TaskSpec | None = None) -> Task:
    """The task the bank was labelled for: `spec` (checked against the bank) or rebuilt from
    the summary the bank keeps (label descriptions are not kept: pass the spec to keep them)."""
    summary = bank.meta().get("task")
    if not summary:
        raise InvalidRequestError(
            f"bank {bank.path} has no task description (not built by distill)"
        )
    kind = summary.get("kind")
    if kind not in SERVED_KINDS:
        raise InvalidRequestError(
            f"bank {bank.path} holds {kind!r} examples; a fine-tuned adapter serves "
            f"{', '.join(SERVED_KINDS)} tasks ('answer' prompts carry retrieved passages the "
            "bank does not keep)",
            param="bank",
        )
    if spec is not None:
        if task_summary(spec) != summary:
            raise InvalidRequestError(
                f"task spec {spec.name!r} is not the one bank {bank.path} was labelled for "
                "(name, kind, labels, schema or instructions differ)",
                param="task",
            )
        return Task(spec.model_copy(update={"examples": None}))
    fields: dict[str, Any] = {k: summary[k] for k in ("name", "kind", "instructions", "input_name")}
    if "labels" in summary:
        fields["labels"] = summary["labels"]
    if "schema" in summary:
        fields["schema"] = summary["schema"]
    return Task(parse_spec(fields, source=f"bank {bank.path}"))


def serving_prompt(task: Task, text: str) -> str:
    """The completion prompt a llama.cpp model with no examples gets for `text`."""
    return build_prompt(task.spec, text, [], "completion", "bare", schema=task.schema).prompt


def training_pair(task: Task, example: Example) -> Pair:
    output: Any = example.output
    if task.spec.kind == "extract":
        output = json.loads(example.output)
    answer = render_output(task.spec, output)
    lead = "" if task.spec.kind == "extract" else " "
    return Pair(serving_prompt(task, example.input), lead + answer)
