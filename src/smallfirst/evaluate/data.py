"""The labelled set: one JSON object a line, `{"input": ..., "expected": ...}`.

`input` is whatever the task takes (text, or an object such as `{"question", "context"}`);
`expected` is the gold label (classify), an object of fields (extract), a reference text or a
list of references (summarize), or an answer or list of accepted answers (answer).
`text` and `label` are accepted as aliases, so a classification set can be written the way
most datasets already are.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequestError

INPUT_KEYS = ("input", "text")
EXPECTED_KEYS = ("expected", "label")


@dataclass(frozen=True, slots=True)
class Example:
    input: Any
    expected: Any


def load_examples(
    path: str | Path, limit: int | None = None, sample: int | None = None, seed: int = 0
) -> list[Example]:
    """Read the set; a bad line is reported by file and line number.

    `limit` keeps the first N examples; `sample` draws N at random (the same N for the same
    `seed`), kept in file order: a file grouped by label gives a fair score on a sample, not
    on its first lines."""
    if limit is not None and sample is not None:
        raise InvalidRequestError("use either a limit (the first N) or a sample (N at random)")
    examples = _read(Path(path), limit)
    if sample is not None and sample < len(examples):
        chosen = sorted(random.Random(seed).sample(range(len(examples)), sample))
        examples = [examples[i] for i in chosen]
    return examples


def _read(path: Path, limit: int | None) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read the labelled set {path}: {exc}") from None
    examples: list[Example] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        examples.append(_parse(line, f"{path}:{number}"))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise InvalidRequestError(f"the labelled set {path} has no examples")
    return examples


def _parse(line: str, where: str) -> Example:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InvalidRequestError(f"{where}: expected a JSON object, got {type(row).__name__}")
    value_in = next((row[k] for k in INPUT_KEYS if k in row), None)
    expected = next((row[k] for k in EXPECTED_KEYS if k in row), None)
    if value_in is None or expected is None:
        raise InvalidRequestError(
            f"{where}: each line needs an `input` (or `text`) and an `expected` (or `label`)"
        )
    return Example(value_in, expected)
