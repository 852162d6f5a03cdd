"""Migrations, rows and spend on a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine

from smallfirst.errors import ConfigError
from smallfirst.ledger import LedgerEntry, LedgerStore, default_ledger_url
from smallfirst.ledger.migrations import MIGRATIONS, migrate


def test_default_store_is_sqlite_wal_in_the_state_dir(state_home) -> None:
    store = LedgerStore()
    assert default_ledger_url().endswith(str(state_home / "ledger.db"))
    store.insert([LedgerEntry(request_id="r1").as_row()])
    store.close()
    conn = sqlite3.connect(state_home / "ledger.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [row[0] for row in conn.execute("SELECT name FROM _smallfirst_migrations")]
    assert names == [name for name, _ in MIGRATIONS]
    assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 1


def test_migrations_apply_once(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        assert migrate(conn) == [name for name, _ in MIGRATIONS]
    with engine.begin() as conn:
        assert migrate(conn) == []


def test_rows_filter_by_time_and_kind_and_spend_counts_request_rows_only(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    parent = LedgerEntry(request_id="r1", ts=100.0, key_id="k1", cost_usd=0.5, model="big")
    store.insert(
        [
            parent.as_row(),
            LedgerEntry.for_hop(
                parent, 1, "answer", ts=101.0, model="small", cost_usd=0.1
            ).as_row(),
            LedgerEntry.for_hop(
                parent, 2, "escalate", ts=102.0, model="big", cost_usd=0.4
            ).as_row(),
            LedgerEntry(request_id="r2", ts=200.0, key_id="k1", cost_usd=0.25).as_row(),
            LedgerEntry(request_id="r3", ts=300.0, key_id=None, cost_usd=9.0).as_row(),
        ]
    )
    assert [r["request_id"] for r in store.rows(since=150)] == ["r2", "r3"]
    hops = store.rows(kind="hop")
    assert [(h["request_id"], h["hop"], h["step"], h["key_id"]) for h in hops] == [
        ("r1", 1, "answer", "k1"),
        ("r1", 2, "escalate", "k1"),
    ]
    assert store.spend_by_key() == {"k1": pytest.approx(0.75)}
    store.close()


def test_a_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot open the ledger"):
        LedgerStore("nosuchdialect://x")
