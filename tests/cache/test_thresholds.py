"""A task's semantic threshold keeps the ambiguity margin it was calibrated with, audits keep
it, and a ledger from before margins (m013) upgrades with its thresholds' checks off."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from smallfirst.cache.thresholds import ThresholdStore
from smallfirst.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE
from smallfirst.ledger.store import LedgerStore


def test_the_margin_is_kept_with_the_threshold_and_through_audits(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    try:
        thresholds = ThresholdStore(store.engine)
        thresholds.save("faq", 0.85, [(0.9, True)] * 40, margin=0.05)
        raised = thresholds.add_audit("faq", 0.86, False, target=0.95)
        found = thresholds.load("faq")
        assert found is not None and found.margin == 0.05 and found.threshold == raised
        thresholds.save("pairs", 0.9, [(0.95, True)])
        assert thresholds.load("pairs").margin is None
    finally:
        store.close()


def test_a_threshold_from_before_margins_upgrades_without_one(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/m012.db"
    engine = create_engine(url)
    with engine.begin() as conn:  # the ledger as m012 left it, a threshold stored then
        conn.execute(
            text(f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(200) PRIMARY KEY, "
                 "applied_at FLOAT NOT NULL)")
        )  # fmt: skip
        for name, fn in [(n, fn) for n, fn in MIGRATIONS if n < "m013"]:
            fn(conn)
            conn.execute(text(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (:n, 0)"), {"n": name})
        conn.execute(
            text("INSERT INTO response_cache_thresholds VALUES ('faq', 0.9, '[[0.95, true]]', 0)")
        )
    engine.dispose()
    store = LedgerStore(url)  # m013
    try:
        found = ThresholdStore(store.engine).load("faq")
        assert found is not None and found.threshold == 0.9 and found.margin is None
    finally:
        store.close()
