"""A knowledge base's chunks, documents and vectors in one SQLite file.

SQLite is the source of truth: the faiss index next to it is a cache that can always be
rebuilt from the vectors stored here. Chunk ids come from AUTOINCREMENT, so an id is never
reused after a document is replaced, and a stale index can never point at the wrong text.
An FTS5 table over the chunk text, kept in step by triggers, gives BM25 keyword search for
free: exact terms (drug names, gene symbols, error codes) that sentence embeddings blur.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 2
_WORD = re.compile(r"\w+")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    source TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    chars INTEGER NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL REFERENCES documents(source) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    source: str
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class NewChunk:
    start: int
    end: int
    text: str
    vector: np.ndarray


class ChunkStore:
    """Thin, typed access to the SQLite file; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Used from whichever thread runs the caller's event loop; KnowledgeBase serialises.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA foreign_keys = ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        self._db.executescript(_SCHEMA)
        if version < 2:  # bases from before the keyword index: fill it from the chunks
            with self._db:
                self._db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # -- settings ---------------------------------------------------------------------------
    def get_meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, values: dict[str, str]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items())
            )

    @property
    def generation(self) -> int:
        """Bumped by every write, so the index cache knows whether it is current."""
        return int(self.get_meta().get("generation", "0"))

    # -- documents --------------------------------------------------------------------------
    def document_hash(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT sha256 FROM documents WHERE source = ?", (source,)
        ).fetchone()
        return row[0] if row else None

    def sources(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT source FROM documents ORDER BY source")]

    def replace_document(
        self, source: str, sha256: str, chars: int, chunks: list[NewChunk]
    ) -> tuple[list[int], list[int]]:
        """Store a document's chunks in place of its old ones: (removed ids, new ids)."""
        with self._db:
            removed = self._chunk_ids([source])
            self._db.execute("DELETE FROM documents WHERE source = ?", (source,))
            self._db.execute(
                "INSERT INTO documents(source, sha256, chars, added_at) VALUES (?, ?, ?, ?)",
                (source, sha256, chars, time.time()),
            )
            new_ids = []
            for ordinal, chunk in enumerate(chunks):
                cursor = self._db.execute(
                    "INSERT INTO chunks(source, ordinal, char_start, char_end, text, vector) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (source, ordinal, chunk.start, chunk.end, chunk.text, _blob(chunk.vector)),
                )
                new_ids.append(int(cursor.lastrowid or 0))
            self._bump()
        return removed, new_ids

    def remove_documents(self, sources: Iterable[str]) -> list[int]:
        """Delete documents and their chunks; returns the chunk ids that went."""
        sources = list(sources)
        with self._db:
            removed = self._chunk_ids(sources)
            self._db.executemany("DELETE FROM documents WHERE source = ?", [(s,) for s in sources])
            self._bump()
        return removed

    def _chunk_ids(self, sources: list[str]) -> list[int]:
        ids: list[int] = []
        for source in sources:
            rows = self._db.execute("SELECT id FROM chunks WHERE source = ?", (source,))
            ids.extend(r[0] for r in rows)
        return ids

    def _bump(self) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- chunks -----------------------------------------------------------------------------
    def chunks(self, ids: list[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            "SELECT id, source, ordinal, char_start, char_end, text FROM chunks "
            f"WHERE id IN ({marks})",
            ids,
        )
        return {row[0]: StoredChunk(*row) for row in rows}

    def keyword_search(self, query: str, limit: int) -> list[int]:
        """Chunk ids ranked by BM25 over the query's words (any of them), best first."""
        words = {w for w in _WORD.findall(query.lower()) if len(w) > 1}
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in sorted(words))
        rows = self._db.execute(
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts) "
            "LIMIT ?",
            (match, limit),
        )
        return [r[0] for r in rows]

    def all_chunks(self) -> list[StoredChunk]:
        """Every chunk in id order: for exports and for other retrievers built on the same cut."""
        rows = self._db.execute(
            "SELECT id, source, ordinal, char_start, char_end, text FROM chunks ORDER BY id"
        )
        return [StoredChunk(*row) for row in rows]

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every chunk, for rebuilding the index."""
        rows = self._db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, vectors.reshape(len(rows), dim)

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""
        docs = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
