"""Where ledger rows go: a `Ledger`, or a `RowBuffer` that holds them for another process.

Batch items and pipelines record through a `RowSink`, so the same row-building code serves a
local run (rows go straight to the ledger) and a Ray actor (rows travel back to the driver
with the item's result, and the driver records them: an actor never writes to the ledger).
"""

from __future__ import annotations

from typing import Protocol

from smallfirst.ledger.entry import LedgerEntry


class RowSink(Protocol):
    def record(self, entry: LedgerEntry) -> None: ...


class RowBuffer:
    """Rows kept in memory until `take()` hands them on."""

    def __init__(self) -> None:
        self.rows: list[LedgerEntry] = []

    def record(self, entry: LedgerEntry) -> None:
        self.rows.append(entry)

    def take(self) -> list[LedgerEntry]:
        rows, self.rows = self.rows, []
        return rows
