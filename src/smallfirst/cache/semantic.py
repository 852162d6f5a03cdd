"""Semantic lookups: the last user turn, its fixed template stripped, embedded by the static
model2vec embedder and searched (faiss, inner product of unit vectors = cosine) among the
entries of its group (route, scope, system prompt, tools, parameters): exactly while a group is
small, with a trained IVF index once it is large (cache/vector_index.py).

The index is per replica and fills from its own answers; the answers themselves live in the
store under their exact keys, so a TTL or `cache clear` removes them for every replica.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.cache.ambiguity import Neighbour
from smallfirst.cache.vector_index import FLAT_UP_TO, VectorIndex
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


class SemanticIndex:
    """One `VectorIndex` per group (exact while small, IVF once large); thread-safe (lookups
    embed in a thread, indexes rebuild in the background)."""

    def __init__(self, embedder: Embedder, flat_up_to: int = FLAT_UP_TO) -> None:
        self.embedder = embedder
        self.flat_up_to = flat_up_to
        self._groups: dict[str, VectorIndex] = {}
        self._lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        return np.ascontiguousarray(self.embedder.encode([text])[:1], dtype=np.float32)

    def neighbours(self, group: str, vector: np.ndarray, k: int = 1) -> list[Neighbour]:
        """The `k` nearest live entries, nearest first, with their true cosine similarities."""
        found = self._groups.get(group)
        return [] if found is None else found.neighbours(vector, k)

    def add(
        self, group: str, vector: np.ndarray, key: str, answer: int, ttl_s: float = math.inf,
        limit: int | None = None,
    ) -> None:  # fmt: skip
        """One entry, with its answer's signature (`ambiguity.answer_signature`)."""
        self.add_many(group, vector, [key], time.time() + ttl_s, limit, [answer])

    def add_many(
        self, group: str, vectors: np.ndarray, keys: list[str], expires_at: float = math.inf,
        limit: int | None = None, answers: Sequence[int] | None = None,
    ) -> None:  # fmt: skip
        """Rows of `vectors` (unit length) under `keys`, in order; at most `limit` kept in
        the group (the route's `max_entries`: the store keeps no more either)."""
        with self._lock:
            found = self._groups.get(group)
            if found is None:
                found = self._groups[group] = VectorIndex(vectors.shape[-1], self.flat_up_to)
        found.add(vectors, keys, expires_at, limit, answers)

    def discard(self, group: str, key: str) -> None:
        """Forget an entry the store no longer has (cleared, evicted, expired early)."""
        found = self._groups.get(group)
        if found is not None:
            found.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()

    def size(self, group: str) -> int:
        found = self._groups.get(group)
        return 0 if found is None else found.live

    def describe(self, group: str) -> str:
        found = self._groups.get(group)
        return "empty" if found is None else found.describe()

    def wait(self) -> None:
        """Until every rebuild under way has replaced its group's index."""
        for found in list(self._groups.values()):
            found.wait()


def static_embedder(path: str | None) -> Embedder:
    from smallfirst.routing.features import StaticEmbedder, router_embedder

    return StaticEmbedder(Path(path)) if path else router_embedder("static")
