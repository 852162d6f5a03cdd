"""Grounded answers: retrieve, quote numbered sources, let the model answer and cite.

A small model does not know a team's documents; given the right passages it only has to
read. The prompt numbers the retrieved chunks, asks for an answer from them alone with
citations like [1], and gives the model one exact phrase for "the sources do not say":
`not in the knowledge base`. Citations are parsed back into the chunks they point at, and
numbers that point at no source are dropped rather than trusted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from smallfirst.models.registry import Registry
from smallfirst.target import one_model_route
from smallfirst.types import ChatRequest, Generation, GenerationParams, Message

NOT_FOUND = "not in the knowledge base"
CHARS_PER_TOKEN = 3
"""Conservative: technical English runs 3.5-4.5 characters per token."""
PROMPT_OVERHEAD_TOKENS = 200

_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_NOT_FOUND = re.compile(r"not\s+in\s+the\s+knowledge\s+base", re.IGNORECASE)

GROUNDED_INSTRUCTIONS = (
    "Answer the question using only the numbered sources below. After each fact, cite the "
    "source it came from by its number in brackets, like [1]. If the sources do not contain "
    f"the answer, say exactly: {NOT_FOUND}"
)
EXTRACTIVE_INSTRUCTIONS = (
    "Answer the question by copying the exact words from one of the numbered sources below, "
    "then the source number in brackets, like [1]. Copy only the words that answer the "
    f"question. If no source contains the answer, say exactly: {NOT_FOUND}"
)


class RetrievedChunk(Protocol):
    """Read-only: a KnowledgeBase's chunks are frozen."""

    @property
    def text(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def score(self) -> float: ...


class Retriever(Protocol):
    """Anything that finds passages for a query: a KnowledgeBase, or a test double."""

    def search(self, query: str, k: int = 5) -> Sequence[RetrievedChunk]: ...


@dataclass(slots=True)
class GroundedAnswer:
    text: str
    """The model's answer as written, citations included."""
    sources: list[RetrievedChunk]
    """The chunks quoted in the prompt; source [n] is `sources[n - 1]`."""
    citations: list[int] = field(default_factory=list)
    """Valid source numbers cited, in order of first mention."""
    not_found: bool = False
    """The model said the sources do not contain the answer (or none were relevant)."""
    model: str | None = None
    """The model that answered; None when no source was relevant and no model was called."""
    generation: Generation | None = None

    @property
    def cited(self) -> list[RetrievedChunk]:
        return [self.sources[n - 1] for n in self.citations]

    @property
    def plain_text(self) -> str:
        """The answer without citation marks, for scoring against a reference."""
        return " ".join(_CITATION.sub(" ", self.text).split())


def parse_citations(text: str, n_sources: int) -> list[int]:
    """Source numbers cited as [1], [2, 3] or [1][2]; numbers outside 1..n are dropped."""
    seen: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= n_sources and number not in seen:
                seen.append(number)
    return seen


def says_not_found(text: str) -> bool:
    return bool(_NOT_FOUND.search(text))


def build_grounded_messages(
    question: str, chunks: list[RetrievedChunk], extractive: bool = False
) -> list[Message]:
    """System message with the instructions and numbered sources; the question as the user."""
    instructions = EXTRACTIVE_INSTRUCTIONS if extractive else GROUNDED_INSTRUCTIONS
    quoted = "\n\n".join(
        f"[{n}] ({Path(c.source).name}) {' '.join(c.text.split())}"
        for n, c in enumerate(chunks, start=1)
    )
    return [
        Message("system", f"{instructions}\n\nSources:\n{quoted}"),
        Message("user", question.strip()),
    ]


def fit_to_context(
    chunks: list[RetrievedChunk], context_tokens: int, max_tokens: int
) -> list[RetrievedChunk]:
    """The best-ranked chunks that fit the model's context next to the answer; at least one."""
    budget = (context_tokens - max_tokens - PROMPT_OVERHEAD_TOKENS) * CHARS_PER_TOKEN
    kept: list[RetrievedChunk] = []
    used = 0
    for chunk in chunks:
        used += len(chunk.text) + 16
        if kept and used > budget:
            break
        kept.append(chunk)
    return kept


async def answer_with_kb(
    question: str,
    kb: Retriever,
    registry: Registry,
    model: str = "default",
    k: int = 4,
    max_tokens: int = 128,
    min_score: float | None = None,
    extractive: bool = False,
) -> GroundedAnswer:
    """Retrieve `k` chunks, ask `model` (a model or router name) to answer from them and cite.

    With `min_score`, chunks less similar than it are dropped; if none is left the answer is
    `not in the knowledge base` without calling a model at all.
    """
    chunks = list(kb.search(question, k))
    if min_score is not None:
        chunks = [c for c in chunks if c.score >= min_score]
    if not chunks:
        return GroundedAnswer(NOT_FOUND, [], not_found=True)
    probe = build_grounded_messages(question, chunks, extractive)
    name = _choose_model(model, registry, probe)
    entry = registry.get(name)
    chunks = fit_to_context(chunks, entry.config.context, max_tokens)
    messages = build_grounded_messages(question, chunks, extractive)
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    generation = await registry.provider(entry.name).chat(ChatRequest(messages, params))
    text = generation.text.strip()
    return GroundedAnswer(
        text=text,
        sources=chunks,
        citations=parse_citations(text, len(chunks)),
        not_found=says_not_found(text),
        model=entry.name,
        generation=generation,
    )


def _choose_model(model: str, registry: Registry, messages: list[Message]) -> str:
    """The model the name means for these messages, resolved as any request's name is."""
    return one_model_route(model, registry, ChatRequest(messages), "a grounded answer").model.name
