"""Semantic lookups: the last user turn, its fixed template stripped, embedded by the static
model2vec embedder and searched (faiss, inner product of unit vectors = cosine) among the
entries of its group (route, scope, system prompt, tools, parameters).

The index is per replica and fills from its own answers; the answers themselves live in the
store under their exact keys, so a TTL or `cache clear` removes them for every replica.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.embeddings import Embedder
from smallfirst.routing.templates import Template


def last_user_text(data: dict[str, Any], template: list[str]) -> str | None:
    """What the semantic cache compares: the last user turn (a completion's prompt), None
    when the request does not end with a user's text."""
    text: Any = data.get("prompt")
    messages = data.get("messages")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        text = last.get("content")
        if isinstance(text, list):
            parts = [p.get("text") for p in text if isinstance(p, dict)]
            texts = [p for p in parts if isinstance(p, str)]
            text = "".join(texts) if len(texts) == len(text) else None
    if not isinstance(text, str) or not text.strip():
        return None
    pieces = sorted(template, key=len, reverse=True)
    return Template(pieces, pieces).split(text)[1]


@dataclass
class _Group:
    index: Any
    keys: list[str] = field(default_factory=list)


class SemanticIndex:
    """One faiss inner-product index per group; thread-safe (lookups run in a thread)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._groups: dict[str, _Group] = {}
        self._lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        return np.ascontiguousarray(self.embedder.encode([text])[:1], dtype=np.float32)

    def search(self, group: str, vector: np.ndarray) -> tuple[str, float] | None:
        """The nearest entry's key and its cosine similarity."""
        with self._lock:
            found = self._groups.get(group)
            if found is None or not found.keys:
                return None
            scores, ids = found.index.search(vector, 1)
            at = int(ids[0][0])
            return (found.keys[at], float(scores[0][0])) if at >= 0 else None

    def add(self, group: str, vector: np.ndarray, key: str) -> None:
        self.add_many(group, vector, [key])

    def add_many(self, group: str, vectors: np.ndarray, keys: list[str]) -> None:
        """Rows of `vectors` (unit length) under `keys`, in order."""
        import faiss

        with self._lock:
            found = self._groups.get(group)
            if found is None:
                found = self._groups[group] = _Group(faiss.IndexFlatIP(vectors.shape[1]))
            found.index.add(vectors)
            found.keys.extend(keys)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()

    def size(self, group: str) -> int:
        found = self._groups.get(group)
        return 0 if found is None else len(found.keys)


def static_embedder(path: str | None) -> Embedder:
    from smallfirst.routing.features import StaticEmbedder, router_embedder

    return StaticEmbedder(Path(path)) if path else router_embedder("static")
