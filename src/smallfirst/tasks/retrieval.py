"""The seam between `answer` tasks and whatever finds the passages (smallfirst kb, a vector
store, a search API): one method, `search(query, k)`, returning chunks with their source."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    source: str = ""
    """Where the passage came from (file, URL, id); returned as the answer's citation."""


@runtime_checkable
class Retriever(Protocol):
    def search(self, query: str, k: int) -> Sequence[object] | Awaitable[Sequence[object]]:
        """The k passages most useful for answering `query`, best first (may be async)."""
        ...


class StaticContext:
    """Fixed passages (the spec's `context`, or `run(context=[...])`): all of them, every time.
    For a handful of passages retrieval would only lose some; beyond `k` it keeps the first."""

    def __init__(self, passages: list[str | Chunk]) -> None:
        self.chunks = [
            p if isinstance(p, Chunk) else Chunk(text=p, source=f"context[{i}]")
            for i, p in enumerate(passages)
        ]

    def search(self, query: str, k: int) -> list[Chunk]:
        return self.chunks[:k]


async def retrieve(retriever: Retriever, query: str, k: int) -> list[Chunk]:
    """Call a sync or async retriever. Anything with `.text` (and `.source`), e.g. a
    `smallfirst kb` chunk, is accepted; plain strings become chunks without a source."""
    found = retriever.search(query, k)
    if inspect.isawaitable(found):
        found = await found
    return [_as_chunk(c) for c in list(found)[:k]]


def _as_chunk(item: object) -> Chunk:
    if isinstance(item, Chunk):
        return item
    if isinstance(item, str):
        return Chunk(text=item)
    return Chunk(text=str(getattr(item, "text", item)), source=str(getattr(item, "source", "")))
