"""Labelled examples and how a few of them are picked for each prompt.

Small models copy the format and the decision boundary from examples far more reliably than
they follow instructions. Picking the examples most similar to the input (kNN over MiniLM
embeddings) shows the model the cases nearest to the one it must decide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Example:
    input: str
    output: Any
    """A label (classify), a dict of fields (extract) or text (summarize / answer)."""


def parse_examples(
    raw: list[dict[str, Any]] | str | None, source: str = "examples"
) -> list[Example]:
    """Inline `{input, output}` mappings, or a JSONL file of them; errors name the entry."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return load_jsonl(Path(raw))
    return [_example(item, f"{source}[{i}]") for i, item in enumerate(raw)]


def load_jsonl(path: Path) -> list[Example]:
    if not path.is_file():
        raise ConfigError(f"examples file {path} does not exist")
    examples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        examples.append(_example(item, f"{path}:{number}"))
    return examples


def _example(item: Any, where: str) -> Example:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: an example must be a mapping with `input` and `output`")
    missing = [key for key in ("input", "output") if key not in item]
    if missing:
        raise ConfigError(f"{where}: example is missing {', '.join(repr(m) for m in missing)}")
    extra = sorted(set(item) - {"input", "output"})
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (an example has input and output)")
    if not isinstance(item["input"], str) or not item["input"].strip():
        raise ConfigError(f"{where}: example input must be a non-empty string")
    return Example(input=item["input"], output=item["output"])


class ExampleBank:
    """Examples plus their embeddings (computed once, on the first kNN selection)."""

    def __init__(self, examples: list[Example], embedder: Embedder | None = None) -> None:
        self.examples = list(examples)
        self._embedder = embedder
        self._vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def fixed(self, k: int) -> list[Example]:
        """The first k, in file order: the same examples for every input (cacheable prompt)."""
        return self.examples[:k]

    def nearest(self, text: str, k: int) -> list[Example]:
        """The k most similar examples, least similar first so the closest sits next to the
        input (small models weigh the last example most)."""
        if k <= 0 or not self.examples:
            return []
        embedder = self._embedder or get_embedder("minilm")
        if self._vectors is None:
            self._vectors = embedder.encode([e.input for e in self.examples])
        query = embedder.encode([text])[0]
        scores = self._vectors @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return [self.examples[int(i)] for i in best[::-1]]

    def select(self, text: str, mode: str, k: int) -> list[Example]:
        if mode == "none" or k == 0:
            return []
        if mode == "knn":
            return self.nearest(text, k)
        return self.fixed(k)
