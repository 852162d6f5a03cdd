"""The ledger: one row per request (and per hop of a multi-step request), queryable later.

Use:

    ledger = Ledger(url)            # SQLite in the state dir by default; any SQLAlchemy URL
    ledger.record(LedgerEntry(request_id=..., model=..., cost_usd=..., ...))   # never blocks
    ledger.flush()                  # wait until everything recorded so far is stored
    ledger.close()                  # flush and stop the writer thread

A cascade records one `kind="request"` row with the totals the client saw and one
`kind="hop"` row per step (`hop=1, 2, ...`, `step="answer" | "check" | ...`) under the same
`request_id`; `LedgerEntry.for_hop` helps. Spend and savings are summed over request rows.
Tables: `requests`, `api_keys` (see README "Ledger schema"), migrations in `migrations.py`.
"""

from __future__ import annotations

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.keys import ApiKey, KeyStore
from smallfirst.ledger.store import LedgerStore, default_ledger_url
from smallfirst.ledger.writer import LedgerWriter


class Ledger:
    """A store plus its background writer: the one object the gateway and cascades share."""

    def __init__(self, url: str | None = None) -> None:
        self.store = LedgerStore(url)
        self.writer = LedgerWriter(self.store)
        self.keys = KeyStore(self.store)

    def record(self, entry: LedgerEntry) -> None:
        self.writer.record(entry)

    def flush(self, timeout: float | None = 30.0) -> bool:
        return self.writer.flush(timeout)

    def close(self) -> None:
        self.writer.close()
        self.store.close()


__all__ = [
    "ApiKey",
    "KeyStore",
    "Ledger",
    "LedgerEntry",
    "LedgerStore",
    "LedgerWriter",
    "default_ledger_url",
]
