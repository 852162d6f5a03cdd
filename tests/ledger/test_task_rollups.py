"""Task rollups: equal to the raw request rows that name a task, whatever the flush order;
built for a ledger whose rows named tasks before the table existed; read over ragged
windows exactly."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, create_engine, select, text

from smallfirst.ledger import LedgerStore, rollup_read, rollups, task_rollups
from smallfirst.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE
from tests.ledger.test_rollups import T0, _traffic


def expected(rows: list[dict[str, Any]]) -> dict[tuple, list]:
    """Computed from the raw rows directly, not with the writer's code."""
    out: dict[tuple, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for row in rows:
        if row["kind"] != "request" or row["task"] is None:
            continue
        for step in rollups.GRANULARITIES:
            key = (
                step,
                math.floor(row["ts"] / step) * step,
                row["key_id"] or "",
                row["task"],
                row["tier"] or "",
                row["status"] // 100,
            )
            out[key][0] += 1
            out[key][1] += row["cost_usd"]
            out[key][2] += row["baseline_cost_usd"]
    return dict(out)


def stored(store: LedgerStore) -> dict[tuple, list]:
    table = store.task_rollups
    with store.engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    return {
        tuple(row[name] for name in task_rollups.KEY_COLUMNS): [
            row[name] for name in task_rollups.MEASURES
        ]
        for row in rows
    }


def assert_same(store: LedgerStore) -> None:
    want, got = expected(store.rows()), stored(store)
    assert set(got) == set(want)
    for key, (requests, cost, baseline) in want.items():
        assert got[key][0] == requests
        assert got[key][1:] == pytest.approx([cost, baseline], abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_task_rollups_equal_raw_rows_in_any_flush_order(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    entries = _traffic(rng, 120)
    rng.shuffle(entries)
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        cuts = sorted(rng.sample(range(len(entries)), 6))
        for low, high in zip([0, *cuts], [*cuts, len(entries)], strict=True):
            store.insert(entry.as_row() for entry in entries[low:high])
        assert_same(store)
        rows = store.rows()
        for _ in range(5):  # ragged windows: raw rows at the partial minutes
            since = T0 + rng.uniform(-600, 3 * 3600)
            until = since + rng.uniform(1, 4 * 3600)
            with store.engine.connect() as conn:
                got = rollup_read.read(
                    conn, since, until, ("task", "tier"), source=rollup_read.TASKS
                )
            want: dict[tuple, int] = defaultdict(int)
            for row in rows:
                if row["kind"] == "request" and row["task"] and since <= row["ts"] < until:
                    want[(row["task"], row["tier"], row["status"] // 100)] += 1
            named = {k: t.requests for k, t in got.items() if k[0] is not None and t.requests}
            assert named == dict(want)
    finally:
        store.close()


def test_m011_builds_them_from_rows_that_named_a_task(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'm010.db'}"
    rows = [entry.as_row() for entry in _traffic(random.Random(9), 100)]
    engine = create_engine(url)
    with engine.begin() as conn:  # the ledger as m010 left it
        conn.execute(
            text(
                f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(200) PRIMARY KEY, "
                "applied_at FLOAT NOT NULL)"
            )
        )
        for name, fn in [(n, fn) for n, fn in MIGRATIONS if n < "m011"]:
            fn(conn)
            conn.execute(text(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (:n, 0)"), {"n": name})
        metadata = MetaData()
        requests = Table("requests", metadata, autoload_with=conn)
        rollups.apply_batch(conn, requests, Table("rollups", metadata, autoload_with=conn), rows)
    engine.dispose()
    store = LedgerStore(url)  # m011
    try:
        assert stored(store) and len(store.rows()) == len(rows)
        assert_same(store)
    finally:
        store.close()
