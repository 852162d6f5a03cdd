"""The faiss index over chunk vectors: exact inner product on unit vectors (= cosine).

A flat index is exact and, at knowledge-base sizes (thousands to a few hundred thousand
chunks), searches in milliseconds; ids are the SQLite chunk ids, so removing a document
removes exactly its vectors. The file is named after the store's write generation: a file
from an older generation (a crash between the SQLite commit and the index write, or another
process's write) is ignored and the index is rebuilt from the vectors in SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.retrieval.store import ChunkStore


class VectorIndex:
    def __init__(self, folder: Path, dim: int) -> None:
        import faiss

        self._faiss = faiss
        self.folder = folder
        self.dim = dim
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.generation = -1
        """The store generation this index reflects."""

    @classmethod
    def load(cls, folder: Path, dim: int, store: ChunkStore) -> VectorIndex:
        """The saved index if it matches the store's generation, else one rebuilt from it."""
        index = cls(folder, dim)
        index.generation = store.generation
        path = index._path(index.generation)
        if path.exists():
            index._index = index._faiss.read_index(str(path))
            return index
        ids, vectors = store.all_vectors(dim)
        if len(ids):
            index._index.add_with_ids(vectors, ids)
        index.save(index.generation)
        return index

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        if ids:
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.array(ids, dtype=np.int64)
            )

    def remove(self, ids: list[int]) -> None:
        if ids:
            self._index.remove_ids(np.array(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity), best first; at most the number of chunks stored."""
        if self.size == 0:
            return []
        scores, ids = self._index.search(vector.reshape(1, -1).astype(np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def similarity(self, vector: np.ndarray, ids: list[int]) -> list[float]:
        """Cosine similarity of `vector` to stored chunks (for hits found by keyword)."""
        if not ids:
            return []
        stored = np.vstack([self._index.reconstruct(int(i)) for i in ids])
        return [float(x) for x in stored @ vector.astype(np.float32)]

    def save(self, generation: int) -> None:
        """Write atomically under the generation's name and drop older files."""
        self.generation = generation
        target = self._path(generation)
        partial = target.with_suffix(".partial")
        self._faiss.write_index(self._index, str(partial))
        os.replace(partial, target)
        for old in self.folder.glob("index-*.faiss"):
            if old != target:
                old.unlink(missing_ok=True)

    def _path(self, generation: int) -> Path:
        return self.folder / f"index-{generation}.faiss"
