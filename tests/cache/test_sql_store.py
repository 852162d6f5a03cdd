"""The SQL store's reads: inline from the ledger's WAL SQLite file (no thread hop on an exact
hit), in a thread from anything else, and a failed read is only a miss."""

from __future__ import annotations

import time
from types import SimpleNamespace

from sqlalchemy import create_engine, event, text

from smallfirst.cache import stores
from smallfirst.cache.entry import CachedAnswer
from smallfirst.cache.stores import ENTRIES, SqlStore, safe_get
from smallfirst.ledger.store import LedgerStore

ANSWER = CachedAnswer(model="small", text="9 to 5")


async def test_reads_from_the_ledgers_wal_file_run_inline_and_honour_the_ttl(
    tmp_path, monkeypatch
) -> None:
    store = SqlStore(LedgerStore(f"sqlite:///{tmp_path}/ledger.db").engine)
    await store.put("key:-|x|1", "key:-", "small", ANSWER, 60, 10)
    assert store.reader is not None
    threaded = []
    monkeypatch.setattr(SqlStore, "_get", lambda self, key: threaded.append(key))
    assert (await store.get("key:-|x|1")).text == "9 to 5"
    assert await store.get("key:-|x|2") is None
    assert threaded == [] and store.reader.usable
    later = time.time() + 61  # the TTL was 60 s
    monkeypatch.setattr(stores, "time", SimpleNamespace(time=lambda: later))
    assert await store.get("key:-|x|1") is None


async def test_a_file_not_in_wal_mode_is_read_in_a_thread(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/plain.db")
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA journal_mode=DELETE"))
    ENTRIES.metadata.create_all(engine)
    store = SqlStore(engine)
    await store.put("key:-|x|1", "key:-", "small", ANSWER, 60, 10)
    assert (await store.get("key:-|x|1")).text == "9 to 5"
    assert store.reader is not None and not store.reader.usable


async def test_a_failed_read_is_a_miss_and_reads_work_again_once_the_table_is_back(
    tmp_path,
) -> None:
    ledger = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    store = SqlStore(ledger.engine)
    await store.put("key:-|x|1", "key:-", "small", ANSWER, 60, 10)
    assert (await store.get("key:-|x|1")).text == "9 to 5"
    with ledger.engine.begin() as conn:
        conn.execute(text("ALTER TABLE response_cache RENAME TO response_cache_away"))
    assert await safe_get(store, "key:-|x|1") is None
    with ledger.engine.begin() as conn:
        conn.execute(text("ALTER TABLE response_cache_away RENAME TO response_cache"))
    assert (await store.get("key:-|x|1")).text == "9 to 5"
