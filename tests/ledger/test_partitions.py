"""PostgreSQL: raw rows partitioned by month, an old ledger upgraded in place, retention that
drops whole months, and no row ever refused for lack of a month."""

from __future__ import annotations

import random
import time

import pytest
from sqlalchemy import MetaData, Table, create_engine, text

from smallfirst.config import RetentionConfig
from smallfirst.ledger import LedgerEntry, LedgerStore, LedgerWriter, partitions, rollups
from smallfirst.ledger.escalations import escalation_summary
from smallfirst.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE
from smallfirst.ledger.report import summarize
from smallfirst.ledger.retention import DAY_S, prune
from tests.ledger.test_rollups import _traffic, assert_same
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow
NOW = time.time()


@pytest.fixture
def ledger_url(postgres_url: str) -> str:  # noqa: F811 - the fixture above
    return fresh_database(postgres_url, "parts")


def _aged(count: int, days: float, seed: int) -> list[LedgerEntry]:
    """Requests with hops spread over the last `days` days (hops half a second later)."""
    rng = random.Random(seed)
    entries = _traffic(rng, count)
    ages: dict[str, float] = {}
    for entry in entries:
        age = ages.setdefault(entry.request_id, rng.uniform(0, days) * DAY_S)
        entry.ts = NOW - age + (0.5 if entry.kind == "hop" else 0.0)
        entry.prompt, entry.response = f"question {entry.request_id}", "answer"
    return entries


def _where(store: LedgerStore) -> dict[tuple[str, str, int], str]:
    """Each row's partition."""
    query = text("SELECT request_id, kind, hop, tableoid::regclass::text FROM requests")
    with store.engine.connect() as conn:
        return {(r, k, h): part for r, k, h, part in conn.execute(query)}


def _months_ahead(now: float) -> set[str]:
    start, names = partitions.month_start(now), set()
    for _ in range(partitions.MONTHS_AHEAD + 1):
        names.add(partitions.name_of(start))
        start = partitions.next_month(start)
    return names


def test_a_new_ledger_is_partitioned_and_never_refuses_a_row(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    with store.engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        assert set(partitions.months(conn)) == _months_ahead(time.time())
    far = NOW + 3 * 365 * DAY_S  # no month made for it yet
    writer = LedgerWriter(store)
    writer.record(LedgerEntry(request_id="now", key_id="k", cost_usd=0.25))
    writer.record(LedgerEntry(request_id="far", ts=far, key_id="k", cost_usd=0.5))
    assert writer.flush(timeout=20)
    writer.close()
    where = _where(store)
    assert where[("now", "request", 0)] == partitions.name_of(partitions.month_start(NOW))
    assert where[("far", "request", 0)] == partitions.DEFAULT
    with store.engine.begin() as conn:  # its month made later: the row moves into it
        assert partitions.ensure_months(conn, far, far) == [
            partitions.name_of(partitions.month_start(far))
        ]
    assert _where(store)[("far", "request", 0)] == partitions.name_of(partitions.month_start(far))
    assert len(store.rows()) == 2
    assert store.spend_by_key() == {"k": 0.75}
    store.close()


def test_an_unpartitioned_ledger_is_upgraded_in_place(ledger_url: str) -> None:
    entries = _aged(200, days=120, seed=5)
    engine = create_engine(ledger_url)
    before_m005 = [(n, fn) for n, fn in MIGRATIONS if n < "m005"]
    with engine.begin() as conn:  # the ledger as the release before partitions left it
        conn.execute(
            text(
                f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(200) PRIMARY KEY, "
                "applied_at FLOAT NOT NULL)"
            )
        )
        for name, fn in before_m005:
            fn(conn)
            conn.execute(text(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (:n, 0)"), {"n": name})
        metadata = MetaData()
        requests = Table("requests", metadata, autoload_with=conn)
        table = Table("rollups", metadata, autoload_with=conn)
        rollups.apply_batch(conn, requests, table, [entry.as_row() for entry in entries])
        ids = dict(
            ((r, k, h), i)
            for i, r, k, h in conn.execute(text("SELECT id, request_id, kind, hop FROM requests"))
        )
        spend = dict(
            conn.execute(
                text(
                    "SELECT key_id, SUM(cost_usd) FROM requests "
                    "WHERE kind = 'request' AND key_id IS NOT NULL GROUP BY key_id"
                )
            ).all()
        )
    engine.dispose()
    store = LedgerStore(ledger_url)  # upgrades in place
    with store.engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        months = set(partitions.months(conn))
    rows = store.rows()
    assert {(r["request_id"], r["kind"], r["hop"]): r["id"] for r in rows} == ids
    assert months >= {partitions.name_of(partitions.month_start(e.ts)) for e in entries}
    assert set(_where(store).values()) <= months  # every row in its month, none in default
    assert_same(store)
    assert store.spend_by_key() == pytest.approx(spend)
    store.insert([LedgerEntry(request_id="after").as_row()])
    assert max(r["id"] for r in store.rows()) > max(ids.values())
    store.close()


def test_retention_drops_whole_months(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    entries = _aged(300, days=500, seed=1)
    with store.engine.begin() as conn:  # the months the gateway made as the time passed
        partitions.ensure_months(conn, min(e.ts for e in entries), NOW)
    store.insert(entry.as_row() for entry in entries)
    before = _totals_at(store)
    cutoff = NOW - 400 * DAY_S
    with store.engine.connect() as conn:
        old_months = {
            name
            for name, start in partitions.months(conn).items()
            if partitions.next_month(start).timestamp() <= cutoff
        }
    assert len(old_months) >= 2
    policy = RetentionConfig(prompts_days=None, rows_days=400, batch_rows=5)
    first = prune(store, policy, now=NOW, max_batches=1)
    in_old_months = sum(
        partitions.name_of(partitions.month_start(e.ts)) in old_months for e in entries
    )
    assert first.rows == in_old_months > policy.batch_rows  # one batch: every old month dropped
    with store.engine.connect() as conn:
        assert not old_months & set(partitions.months(conn))
    rest = prune(store, policy, now=NOW)
    assert rest.finished
    rows = store.rows()
    assert all(r["ts"] >= cutoff for r in rows)
    assert len(rows) == sum(e.ts >= cutoff for e in entries)
    assert first.rows + rest.rows == len(entries) - len(rows)
    assert _totals_at(store) == before  # from the rollups: pruning never moves them
    store.close()


def _totals_at(store: LedgerStore) -> tuple:
    """Spend per key, the report (all time and a window) and the escalation summary."""
    return (
        store.spend_by_key(),
        summarize(store),
        summarize(store, since=NOW - 450 * DAY_S),
        escalation_summary(store),
    )
