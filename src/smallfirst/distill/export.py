"""Fine-tuning data from a bank: OpenAI chat JSONL and prompt/completion JSONL (TRL / peft).

Both use the same instruction the teacher saw (minus nothing: no few-shot examples), so the
fine-tuned student is asked exactly what it was trained on.

- `openai`: `{"messages": [system, user, assistant]}` per line, the OpenAI fine-tuning format
  (also TRL's "conversational" format).
- `prompt-completion`: `{"prompt": "...", "completion": "..."}` per line, TRL's standard
  prompt-completion format; the prompt ends where the answer starts.
- `examples`: `{"input": ..., "output": ...}` per line, the tasks package's example file: point a
  task spec's `examples:` at it with `few_shot: {mode: knn}` and a small LLM sees the teacher's
  answers to the inputs most like each new one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Literal

from smallfirst.distill.bank import Example, ExampleBank
from smallfirst.distill.prompts import teacher_messages
from smallfirst.errors import InvalidRequestError

ExportFormat = Literal["openai", "prompt-completion", "examples"]
FORMATS: tuple[str, ...] = ("openai", "prompt-completion", "examples")


def openai_record(task: dict[str, Any], example: Example) -> dict[str, Any]:
    messages = [
        {"role": m.role, "content": m.content} for m in teacher_messages(task, example.input)
    ]
    messages.append({"role": "assistant", "content": example.output})
    return {"messages": messages}


def prompt_completion_record(task: dict[str, Any], example: Example) -> dict[str, str]:
    system, user = teacher_messages(task, example.input)
    prompt = f"{system.content}\n\n{user.content}\nAnswer:"
    return {"prompt": prompt, "completion": " " + example.output}


def example_record(task: dict[str, Any], example: Example) -> dict[str, Any]:
    """Extract outputs are stored as JSON text; a task example wants the mapping itself."""
    output: Any = example.output
    if task["kind"] == "extract":
        output = json.loads(example.output)
    return {"input": example.input, "output": output}


BUILDERS = {
    "openai": openai_record,
    "prompt-completion": prompt_completion_record,
    "examples": example_record,
}


def export_bank(
    bank: ExampleBank,
    out: str | Path,
    fmt: ExportFormat = "openai",
    *,
    valid_share: float = 0.0,
    seed: int = 0,
) -> dict[str, int]:
    """Write the bank's pairs; with `valid_share` > 0 also `<out stem>.valid.jsonl`.

    Returns the number of lines written per file name.
    """
    if fmt not in FORMATS:
        raise InvalidRequestError(f"unknown export format {fmt!r}; use one of {FORMATS}")
    if not 0.0 <= valid_share < 1.0:
        raise InvalidRequestError("valid share must be in [0, 1)", param="valid_share")
    task = bank.meta().get("task")
    if not task:
        raise InvalidRequestError(
            f"bank {bank.path} has no task description (not built by distill)"
        )
    examples = bank.examples()
    if not examples:
        raise InvalidRequestError(f"bank {bank.path} is empty: label some inputs first")
    random.Random(seed).shuffle(examples)
    n_valid = round(len(examples) * valid_share)
    build = BUILDERS[fmt]
    out = Path(out)
    files = {out: examples[n_valid:]}
    if n_valid:
        files[out.with_suffix(".valid.jsonl")] = examples[:n_valid]
    written: dict[str, int] = {}
    for path, rows in files.items():
        with path.open("w", encoding="utf-8") as handle:
            for example in rows:
                handle.write(json.dumps(build(task, example), ensure_ascii=False) + "\n")
        written[str(path)] = len(rows)
    return written
