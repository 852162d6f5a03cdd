"""Sentence embeddings cached on disk by content hash.

Embedding thousands of texts with MiniLM takes minutes on a small CPU; a bank, a student and a
benchmark all embed the same inputs again and again, so each vector is computed once and kept
in a SQLite file in the state directory, keyed by (embedder, sha256 of the text).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smallfirst.config import state_dir
from smallfirst.embeddings import Embedder, get_embedder

CACHE_FILE = "embeddings.sqlite"
BATCH = 256


def text_hash(text: str) -> str:
    """Stable content id of an input (also the bank's de-duplication key)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Encode texts through an embedder, reusing vectors computed before."""

    def __init__(self, embedder: Embedder | None = None, path: Path | None = None) -> None:
        self.embedder = embedder or get_embedder("minilm")
        self.path = path or state_dir() / CACHE_FILE
        self._db: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS vectors ("
                "embedder TEXT NOT NULL, hash TEXT NOT NULL, vec BLOB NOT NULL, "
                "PRIMARY KEY (embedder, hash))"
            )
        return self._db

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text, in order."""
        dim = self.embedder.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        known = self._lookup(set(hashes))
        missing: dict[str, str] = {}
        for text, key in zip(texts, hashes, strict=True):
            if key not in known:
                missing.setdefault(key, text)
        keys = list(missing)
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            vectors = self.embedder.encode([missing[k] for k in chunk])
            self._store(chunk, vectors)
            known.update(zip(chunk, vectors, strict=True))
        for row, key in enumerate(hashes):
            out[row] = known[key]
        return out

    def _lookup(self, hashes: set[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        wanted = list(hashes)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn().execute(
                f"SELECT hash, vec FROM vectors WHERE embedder = ? AND hash IN ({marks})",
                [self.embedder.name, *chunk],
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, hashes: list[str], vectors: np.ndarray) -> None:
        rows = [
            (self.embedder.name, key, np.asarray(vec, dtype=np.float32).tobytes())
            for key, vec in zip(hashes, vectors, strict=True)
        ]
        with self._conn() as db:
            db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
