"""The example bank: teacher-labelled input/output pairs with an embedding index.

One SQLite file per bank in `<state dir>/banks/NAME.sqlite`. Rows are keyed by the sha256 of
the input, so labelling is resumable and never stores an input twice. Vectors (MiniLM) are
computed lazily in batches and kept in the same file; search is an exact inner product over
unit vectors in numpy, which is fast enough for the bank sizes distillation produces (<10^5).
The tasks package uses `nearest(text, k)` to pick kNN few-shot examples.

A bank can also hold *background* inputs: unlabelled traffic that is not this task's job
(`distill label --background FILE`, no teacher call, free), or inputs the teacher said fit no
label (`distill label --out-of-scope`, paid: their cost is in the bank's total). They teach the
student what to defer: a background class, and out-of-scope stand-ins for its thresholds.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.config import state_dir
from smallfirst.distill.embed_cache import EmbeddingCache, text_hash
from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import InvalidRequestError, NotFoundError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS examples ("
    " id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, input TEXT NOT NULL,"
    " output TEXT NOT NULL, label TEXT, teacher TEXT NOT NULL, cost_usd REAL NOT NULL,"
    " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, created REAL NOT NULL,"
    " vec BLOB)",
    "CREATE TABLE IF NOT EXISTS failures ("
    " hash TEXT PRIMARY KEY, input TEXT NOT NULL, reason TEXT NOT NULL,"
    " attempts INTEGER NOT NULL, cost_usd REAL NOT NULL, updated REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS background ("
    " id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, input TEXT NOT NULL, vec BLOB,"
    " cost_usd REAL NOT NULL DEFAULT 0)",
)
_BACKGROUND_COST = "ALTER TABLE background ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0"
"""Banks made before the teacher could call an input out of scope lack the column."""


@dataclass(frozen=True, slots=True)
class Example:
    """One teacher-labelled pair. `label` is set for classification tasks; `score` by search."""

    input: str
    output: str
    label: str | None = None
    teacher: str = ""
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class Failure:
    input: str
    reason: str
    attempts: int


def bank_path(name_or_path: str) -> Path:
    """A bank name maps into the state dir; a path ending in .sqlite is used as given."""
    if name_or_path.endswith(".sqlite"):
        return Path(name_or_path)
    if not _NAME.match(name_or_path):
        raise InvalidRequestError(
            f"bank name {name_or_path!r} must be letters, digits, '.', '_' or '-'", param="bank"
        )
    return state_dir() / "banks" / f"{name_or_path}.sqlite"


class ExampleBank:
    """Labelled examples of one task, searchable by meaning."""

    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        self.path = path
        self._embedder = embedder
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        for statement in _SCHEMA:
            self._db.execute(statement)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(background)")}
        if "cost_usd" not in columns:
            self._db.execute(_BACKGROUND_COST)
        self._db.commit()
        self._index: tuple[np.ndarray, list[Example]] | None = None

    @classmethod
    def open(cls, name_or_path: str, embedder: Embedder | None = None) -> ExampleBank:
        """Open (creating if needed) a bank by name or .sqlite path."""
        return cls(bank_path(name_or_path), embedder)

    @classmethod
    def open_existing(cls, name_or_path: str, embedder: Embedder | None = None) -> ExampleBank:
        """Open a bank that must already exist (404 otherwise), e.g. to train from it."""
        path = bank_path(name_or_path)
        if not path.exists():
            raise NotFoundError(f"no example bank {name_or_path!r} (looked for {path})")
        return cls(path, embedder)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            kind = self.meta().get("embedder", "minilm")
            self._embedder = EmbeddingCache(get_embedder(kind))
        return self._embedder

    def meta(self) -> dict[str, Any]:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_meta(self, **values: Any) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(key, json.dumps(value)) for key, value in values.items()],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]

    def known_hashes(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT hash FROM examples")}

    def settled_hashes(self) -> set[str]:
        """Inputs a labelling run need not ask about again: examples and background."""
        rows = self._db.execute("SELECT hash FROM examples UNION SELECT hash FROM background")
        return {row[0] for row in rows}

    def add(
        self,
        input: str,
        output: str,
        *,
        label: str | None = None,
        teacher: str = "",
        cost_usd: float = 0.0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> bool:
        """Store one pair; False if this input is already in the bank (first answer wins)."""
        key = text_hash(input)
        with self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO examples (hash, input, output, label, teacher, cost_usd,"
                " input_tokens, output_tokens, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    input,
                    output,
                    label,
                    teacher,
                    cost_usd,
                    input_tokens,
                    output_tokens,
                    time.time(),
                ),
            )
            self._db.execute(  # what failed attempts cost stays counted, on the example now
                "UPDATE examples SET cost_usd = cost_usd + COALESCE("
                "(SELECT cost_usd FROM failures WHERE hash = ?), 0) WHERE hash = ?",
                (key, key),
            )
            self._db.execute("DELETE FROM failures WHERE hash = ?", (key,))
        if cursor.rowcount:
            self._index = None
        return bool(cursor.rowcount)

    def add_many(self, pairs: list[tuple[str, str, str | None]], teacher: str = "") -> int:
        """Store (input, output, label) rows in one transaction (e.g. existing gold labels);
        returns how many were new."""
        now = time.time()
        rows = [(text_hash(i), i, o, label, teacher, 0.0, 0, 0, now) for i, o, label in pairs]
        before = len(self)
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO examples (hash, input, output, label, teacher, cost_usd,"
                " input_tokens, output_tokens, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self._index = None
        return len(self) - before

    def add_background(self, texts: list[str]) -> int:
        """Store unlabelled out-of-scope inputs; returns how many were new. An input that is
        already a labelled example is not background and is skipped."""
        known = self.known_hashes()
        rows = [(text_hash(t), t) for t in texts if t.strip() and text_hash(t) not in known]
        before = self.background_count()
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO background (hash, input) VALUES (?, ?)", rows
            )
        return self.background_count() - before

    def add_out_of_scope(self, text: str, cost_usd: float) -> bool:
        """Store an input the teacher said fits no label as background, with what that answer
        cost (it counts in `total_cost`, with what earlier failed attempts at it cost); False
        when it was already stored."""
        key = text_hash(text)
        with self._db:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO background (hash, input, cost_usd) VALUES (?, ?, ?)",
                (key, text, cost_usd),
            )
            if cursor.rowcount == 1:
                self._db.execute(
                    "UPDATE background SET cost_usd = cost_usd + COALESCE("
                    "(SELECT cost_usd FROM failures WHERE hash = ?), 0) WHERE hash = ?",
                    (key, key),
                )
                self._db.execute("DELETE FROM failures WHERE hash = ?", (key,))
        return cursor.rowcount == 1

    def background_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM background").fetchone()[0]

    def background_vectors(self) -> np.ndarray:
        """Unit vectors of the background inputs (embedding missing ones in batches)."""
        self._embed_missing("background")
        rows = self._db.execute("SELECT vec FROM background ORDER BY id").fetchall()
        matrix = np.zeros((len(rows), self.embedder.dim), dtype=np.float32)
        for i, (blob,) in enumerate(rows):
            matrix[i] = np.frombuffer(blob, dtype=np.float32)
        return matrix

    def record_failure(self, input: str, reason: str, attempts: int, cost_usd: float) -> None:
        """Remember why an input could not be labelled; a rerun tries it again. Attempts and
        cost add up over runs: money spent on an input is never forgotten."""
        with self._db:
            self._db.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(hash) DO UPDATE SET"
                " reason = excluded.reason, attempts = attempts + excluded.attempts,"
                " cost_usd = cost_usd + excluded.cost_usd, updated = excluded.updated",
                (text_hash(input), input, reason, attempts, cost_usd, time.time()),
            )

    def failures(self) -> list[Failure]:
        rows = self._db.execute("SELECT input, reason, attempts FROM failures ORDER BY updated")
        return [Failure(*row) for row in rows]

    def examples(self) -> list[Example]:
        rows = self._db.execute("SELECT input, output, label, teacher FROM examples ORDER BY id")
        return [Example(*row) for row in rows]

    def total_cost(self) -> float:
        spent = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM examples").fetchone()[0]
        lost = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM failures").fetchone()[0]
        refused = self._db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM background")
        return float(spent + lost + refused.fetchone()[0])

    def vectors(self) -> tuple[np.ndarray, list[Example]]:
        """All examples with their unit vectors (computing missing ones in batches)."""
        if self._index is None:
            self._embed_missing()
            rows = self._db.execute(
                "SELECT input, output, label, teacher, vec FROM examples ORDER BY id"
            ).fetchall()
            dim = self.embedder.dim
            matrix = np.zeros((len(rows), dim), dtype=np.float32)
            for i, row in enumerate(rows):
                matrix[i] = np.frombuffer(row[4], dtype=np.float32)
            self._index = (matrix, [Example(*row[:4]) for row in rows])
        return self._index

    def _embed_missing(self, table: str = "examples", batch: int = 256) -> None:
        while True:
            rows = self._db.execute(
                f"SELECT id, input FROM {table} WHERE vec IS NULL LIMIT ?", (batch,)
            ).fetchall()
            if not rows:
                return
            vectors = self.embedder.encode([text for _, text in rows])
            with self._db:
                self._db.executemany(
                    f"UPDATE {table} SET vec = ? WHERE id = ?",
                    [
                        (vec.astype(np.float32).tobytes(), i)
                        for (i, _), vec in zip(rows, vectors, strict=True)
                    ],
                )

    def nearest(self, text: str, k: int = 4) -> list[Example]:
        """The k examples most similar to `text` (cosine), best first, with `score` set."""
        return self.nearest_to_vector(self.embedder.encode([text])[0], k)

    def nearest_to_vector(self, vector: np.ndarray, k: int) -> list[Example]:
        if k <= 0:
            return []
        matrix, examples = self.vectors()
        if not examples:
            return []
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        k = min(k, len(examples))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [_with_score(examples[i], float(scores[i])) for i in top]

    def close(self) -> None:
        self._db.close()


def _with_score(example: Example, score: float) -> Example:
    return Example(example.input, example.output, example.label, example.teacher, score)
