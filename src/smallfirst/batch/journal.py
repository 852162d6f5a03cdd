"""The run's journal: a SQLite file beside the output that makes a batch resumable.

An item's result is committed in the same transaction that marks it done, so after a
`kill -9` at any moment a rerun skips exactly the committed items and redoes the rest: the
output, exported from the journal in input order, has every item exactly once.

The journal also records a digest of every input line (`lines`). Results are keyed by position,
so a resume first checks that the input still has the same lines in the same places; if not it
is refused (naming the first changed line), or, when changed input is allowed, finished results
are moved to wherever their content now is and the rest is processed (`adopt_input`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
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
CREATE TABLE IF NOT EXISTS lines (
    seq INTEGER PRIMARY KEY,
    line INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    digest BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS retired (
    item_id TEXT NOT NULL,
    result TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);
"""
"""`retired`: results of lines no longer in a changed input, kept so their spend still counts."""

# Done items paired with the current input by content: the k-th finished copy of a line goes to
# the k-th copy of that line in the new input, so duplicates are neither merged nor billed twice.
MOVES = """
CREATE TEMP TABLE moves AS
SELECT old.seq AS old_seq, new.seq AS new_seq, new.item_id AS item_id
FROM (
    SELECT items.seq, lines.digest,
           row_number() OVER (PARTITION BY lines.digest ORDER BY items.seq) AS k
    FROM items JOIN lines USING (seq) WHERE items.status = 'done'
) AS old
JOIN (
    SELECT seq, item_id, digest, row_number() OVER (PARTITION BY digest ORDER BY seq) AS k
    FROM incoming
) AS new USING (digest, k)
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


@dataclass(frozen=True, slots=True)
class InputLine:
    seq: int
    line: int
    item_id: str
    digest: bytes


class InputChangedError(InvalidRequestError):
    """The input is not the one the journal was started with; the message names where."""

    code = "input_changed"


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

    def adopt_input(
        self, lines: Iterable[InputLine], *, source: str, noun: str, allow_changed: bool
    ) -> int:
        """Check the input against the recorded lines; return how many results were retired.

        A first run records the lines. A resume on the same lines changes nothing. A resume on
        other lines raises `InputChangedError`, unless `allow_changed`: then done results follow
        their content to its new position, results of lines no longer present are retired (their
        spend still counts), rejections are dropped (they are checked again), and the new lines
        are recorded, all in one transaction.
        """
        self.db.execute(
            "CREATE TEMP TABLE incoming "
            "(seq INTEGER PRIMARY KEY, line INTEGER, item_id TEXT, digest BLOB)"
        )
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT INTO incoming VALUES (?, ?, ?, ?)",
                    ((x.seq, x.line, x.item_id, x.digest) for x in lines),
                )
            return self._adopt(source, noun, allow_changed)
        finally:
            self.db.execute("DROP TABLE IF EXISTS temp.incoming")
            self.db.execute("DROP TABLE IF EXISTS temp.moves")

    def _adopt(self, source: str, noun: str, allow_changed: bool) -> int:
        recorded = self.db.execute("SELECT 1 FROM meta WHERE key = 'input'").fetchone()
        if recorded is None:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("INSERT INTO lines SELECT * FROM incoming")
                self.db.execute("INSERT INTO meta VALUES ('input', ?)", (source,))
            return 0
        change = self._first_change(noun)
        if change is None:
            return 0
        if not allow_changed:
            raise InputChangedError(
                f"{source} changed since {self.path} was started: {change}. Rerun with "
                "--allow-changed-input to keep the finished lines (matched by content) and "
                "process the new or changed ones, or with --restart to start over"
            )
        return self._rebase()

    def _first_change(self, noun: str) -> str | None:
        """The first position where the input differs from the recorded lines, in words."""
        row = self.db.execute(
            "SELECT seq FROM incoming AS i LEFT JOIN lines AS l USING (seq) "
            "WHERE l.digest IS NOT i.digest "
            "UNION ALL SELECT seq FROM lines AS l LEFT JOIN incoming AS i USING (seq) "
            "WHERE i.seq IS NULL ORDER BY 1 LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        seq = row[0]
        now, now_next = self._at("incoming", seq), self._at("incoming", seq + 1)
        was, was_next = self._at("lines", seq), self._at("lines", seq + 1)
        if was is None:
            assert now is not None  # `seq` is a position of at least one of the two tables
            return f"{noun} {now[0]} was added after the {seq} recorded {noun}s"
        if now is None:
            return f"{noun}s from {was[0]} on were removed"
        if now_next is not None and now_next[1] == was[1]:
            return f"{noun} {now[0]} was inserted"
        if was_next is not None and was_next[1] == now[1]:
            return f"{noun} {was[0]} was removed"
        return f"{noun} {now[0]} changed"

    def _at(self, table: str, seq: int) -> tuple[int, bytes] | None:
        return self.db.execute(f"SELECT line, digest FROM {table} WHERE seq = ?", (seq,)).fetchone()

    def _rebase(self) -> int:
        stale = "seq NOT IN (SELECT old_seq FROM moves)"
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM items WHERE status = 'rejected'")
            self.db.execute(MOVES)
            retired = self.db.execute(
                "INSERT INTO retired SELECT item_id, result, cost_usd, input_tokens, "
                f"output_tokens FROM items WHERE {stale}"
            ).rowcount
            self.db.execute(f"DELETE FROM items WHERE {stale}")
            self.db.execute("UPDATE items SET seq = -1 - seq")  # free every position first
            # A positional id (the row number) follows the line; a content id stays as it is.
            self.db.execute(
                "UPDATE items SET seq = m.new_seq, item_id = m.item_id, result = CASE "
                "WHEN items.item_id = m.item_id THEN result "
                "ELSE json_set(result, '$.id', m.item_id) END "
                "FROM moves AS m WHERE items.seq = -1 - m.old_seq"
            )
            self.db.execute("DELETE FROM lines")
            self.db.execute("INSERT INTO lines SELECT * FROM incoming")
        return retired

    def line_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM lines").fetchone()[0]

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
        """Counts of the current items; `cost_usd` also includes retired results (money spent)."""
        row = self.db.execute(
            "SELECT count(*), coalesce(sum(cost_usd), 0) "
            "+ (SELECT coalesce(sum(cost_usd), 0) FROM retired), "
            "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
            "coalesce(sum(status = 'rejected'), 0) FROM items"
        ).fetchone()
        keys = ("items", "cost_usd", "input_tokens", "output_tokens", "rejected")
        return dict(zip(keys, row, strict=True))

    def rows(self, status: str) -> Iterator[dict[str, Any]]:
        query = "SELECT result FROM items WHERE status = ? ORDER BY seq"
        for (result,) in self.db.execute(query, (status,)):
            yield json.loads(result)

    def close(self) -> None:
        self.db.close()
