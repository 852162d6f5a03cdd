"""The run's journal: a SQLite file beside the output that makes a batch resumable.

An item's result is committed in the same transaction that marks it done, so after a
`kill -9` at any moment a rerun skips exactly the committed items and redoes the rest: the
output, exported from the journal in input order, has every item exactly once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequestError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'rejected')),
    result TEXT NOT NULL,
    cost_usd REAL NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(slots=True)
class Outcome:
    seq: int
    item_id: str
    status: str
    """`done` or `rejected`."""
    result: dict[str, Any]
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal.sqlite")


class Journal:
    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._check_job(job)

    def _check_job(self, job: dict[str, Any]) -> None:
        """A journal belongs to one job: resuming with other settings would mix outputs."""
        wanted = json.dumps(job, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'job'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('job', ?)", (wanted,))
        elif row[0] != wanted:
            raise InvalidRequestError(
                f"{self.path} records a different job ({row[0]}); pass --restart to start "
                "over or use another --out"
            )

    def finished(self) -> set[int]:
        return {seq for (seq,) in self.db.execute("SELECT seq FROM items")}

    def record(self, outcomes: list[Outcome]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        o.seq,
                        o.item_id,
                        o.status,
                        json.dumps(o.result, ensure_ascii=False),
                        o.cost_usd,
                        o.input_tokens,
                        o.output_tokens,
                    )
                    for o in outcomes
                ],
            )

    def totals(self) -> dict[str, float]:
        row = self.db.execute(
            "SELECT count(*), coalesce(sum(cost_usd), 0), coalesce(sum(input_tokens), 0), "
            "coalesce(sum(output_tokens), 0), coalesce(sum(status = 'rejected'), 0) FROM items"
        ).fetchone()
        keys = ("items", "cost_usd", "input_tokens", "output_tokens", "rejected")
        return dict(zip(keys, row, strict=True))

    def rows(self, status: str) -> Iterator[dict[str, Any]]:
        query = "SELECT result FROM items WHERE status = ? ORDER BY seq"
        for (result,) in self.db.execute(query, (status,)):
            yield json.loads(result)

    def close(self) -> None:
        self.db.close()
