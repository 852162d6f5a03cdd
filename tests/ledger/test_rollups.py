"""Rollups equal the aggregation of the raw rows, whatever order the rows are flushed in."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, Table, create_engine, select, text
from sqlalchemy.exc import OperationalError

from smallfirst.ledger import LedgerEntry, LedgerStore, LedgerWriter, rollup_read, rollups
from smallfirst.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture

T0 = 1_795_000_000.0
STEPS = ["answer", "check", "escalate", "fallback"]


def _traffic(rng: random.Random, count: int) -> list[LedgerEntry]:
    """Requests over ~3 hours with hops (some escalating twice), errors, streams, no-key
    and unrouted rows, missing latencies; costs in whole micro-dollars."""
    entries = []
    for n in range(count):
        status = rng.choice([200, 200, 200, 400, 429, 502])
        request = LedgerEntry(
            request_id=f"r{n}",
            ts=T0 + rng.uniform(0, 3 * 3600),
            endpoint=rng.choice(["chat", "completions", "tasks"]),
            key_id=rng.choice([None, "k1", "k2"]),
            model=rng.choice([None, "small", "large"]),
            tier=rng.choice([None, "small", "large"]),
            router=rng.choice([None, "auto", "cascade-x"]),
            task=rng.choice([None, "intents", "slots"]),
            stream=rng.random() < 0.3,
            input_tokens=rng.randint(0, 500),
            output_tokens=rng.randint(0, 200),
            cost_usd=rng.randint(0, 2000) / 1e6,
            baseline_cost_usd=rng.randint(0, 4000) / 1e6,
            latency_ms=None if rng.random() < 0.1 else rng.lognormvariate(5, 1.5),
            ttft_ms=None if rng.random() < 0.4 else rng.lognormvariate(3, 1.5),
            status=status,
        )
        request.key_name = request.key_id and f"name-{request.key_id}"
        entries.append(request)
        for hop in range(1, rng.choice([0, 0, 1, 3, 5]) + 1):
            entries.append(
                LedgerEntry.for_hop(
                    request,
                    hop,
                    rng.choice(STEPS),
                    model="small",
                    cost_usd=rng.randint(0, 1000) / 1e6,
                    ts=request.ts + rng.uniform(0, 2),
                )
            )
    return entries


def expected(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """The rollups, computed directly from raw rows (independently of the writer's code)."""
    hops = defaultdict(list)
    for row in rows:
        if row["kind"] == "hop":
            hops[row["request_id"]].append(row)
    out: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row["kind"] != "request":
            continue
        mine = hops[row["request_id"]]
        escalations = [h["hop"] for h in mine if h["step"] == "escalate"]
        after = [h["cost_usd"] for h in mine if escalations and h["hop"] > min(escalations)]
        labels = ("" if row[name] is None else row[name] for name in rollups.DIMENSIONS[:-1])
        dims = (*labels, row["status"] // 100)
        for step in rollups.GRANULARITIES:
            key = (step, math.floor(row["ts"] / step) * step, *dims)
            slot = out.setdefault(key, defaultdict(int))
            slot["requests"] += 1
            slot["input_tokens"] += row["input_tokens"]
            slot["output_tokens"] += row["output_tokens"]
            slot["cost_usd"] += row["cost_usd"]
            slot["baseline_cost_usd"] += row["baseline_cost_usd"]
            slot["escalated"] += bool(escalations)
            slot["escalation_cost_usd"] += sum(after)
            slot["hops"] += len(mine)
            for value, prefix in ((row["latency_ms"], "lat"), (row["ttft_ms"], "ttft")):
                if value is not None:
                    slot[f"{prefix}_{rollups.hist_index(value)}"] += 1
    return out


def stored(store: LedgerStore) -> dict[tuple, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(store.rollups)).mappings().all()
    return {
        tuple(row[name] for name in rollups.KEY_COLUMNS): {
            name: row[name] for name in rollups.MEASURES if row[name]
        }
        for row in rows
    }


def assert_same(store: LedgerStore) -> None:
    want, got = expected(store.rows()), stored(store)
    assert set(got) == set(want)
    for key, measures in want.items():
        measures = {name: value for name, value in measures.items() if value}
        assert set(got[key]) == set(measures), key
        for name, value in measures.items():
            if isinstance(value, float):
                assert got[key][name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
            else:
                assert got[key][name] == value, (key, name)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 60), batches=st.integers(1, 8))
def test_rollups_equal_raw_aggregation_in_any_flush_order(
    tmp_path_factory, seed: int, count: int, batches: int
) -> None:
    rng = random.Random(seed)
    entries = _traffic(rng, count)
    rng.shuffle(entries)  # hops may be stored before their request row, in another batch
    store = LedgerStore(f"sqlite:///{tmp_path_factory.mktemp('l') / 'l.db'}")
    cuts = sorted(rng.sample(range(len(entries) + 1), min(batches, len(entries) + 1)))
    for low, high in zip([0, *cuts], [*cuts, len(entries)], strict=True):
        store.insert(entry.as_row() for entry in entries[low:high])
    assert_same(store)
    window_matches_raw(store, rng)
    store.close()


def window_matches_raw(store: LedgerStore, rng: random.Random) -> None:
    """Windows with ragged edges (seconds inside a minute) add up to the raw rows in them."""
    rows = store.rows()
    for _ in range(5):
        since = T0 + rng.uniform(-600, 3 * 3600)
        until = since + rng.uniform(1, 4 * 3600)
        with store.engine.connect() as conn:
            got = rollup_read.total(rollup_read.read(conn, since, until))
        inside = [r for r in rows if since <= next_ts(rows, r) < until]
        want = expected(inside)
        hourly = [m for k, m in want.items() if k[0] == 3600]
        assert got.requests == sum(m["requests"] for m in hourly)
        assert got.escalated == sum(m["escalated"] for m in hourly)
        assert got.hops == sum(m["hops"] for m in hourly)
        assert got.cost_usd == pytest.approx(sum(m["cost_usd"] for m in hourly), abs=1e-12)


def next_ts(rows: list[dict[str, Any]], row: dict[str, Any]) -> float:
    """A hop counts in the window of its request row."""
    if row["kind"] == "request":
        return row["ts"]
    return next(
        r["ts"] for r in rows if r["kind"] == "request" and r["request_id"] == row["request_id"]
    )


class FlakyStore(LedgerStore):
    """The first insert commits and then reports a lost connection (an ambiguous commit)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls = 0

    def insert(self, rows) -> int:
        self.calls += 1
        count = super().insert(rows)
        if self.calls == 1:
            raise OperationalError("COMMIT", {}, ConnectionError("connection lost after commit"))
        return count


def test_a_retried_batch_after_an_ambiguous_commit_is_not_rolled_up_twice(tmp_path) -> None:
    store = FlakyStore(f"sqlite:///{tmp_path / 'l.db'}")
    writer = LedgerWriter(store)
    entries = _traffic(random.Random(3), 40)
    for entry in entries[:50]:
        writer.record(entry)
    assert writer.flush(timeout=20)
    for entry in entries[50:]:  # the rest, after the retry stored nothing twice
        writer.record(entry)
    assert writer.flush(timeout=20)
    writer.close()
    assert len(store.rows()) == len(entries)
    assert_same(store)
    store.close()


def test_migration_builds_rollups_for_a_ledger_from_before_them(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    entries = _traffic(random.Random(11), 200)
    engine = create_engine(url)
    with engine.begin() as conn:  # the ledger as the last release left it: m001 and m002 only
        conn.execute(
            text(
                f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(200) PRIMARY KEY, "
                "applied_at FLOAT NOT NULL)"
            )
        )
        for name, fn in MIGRATIONS[:2]:
            fn(conn)
            conn.execute(text(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (:n, 0)"), {"n": name})
        requests = Table("requests", MetaData(), autoload_with=conn)
        conn.execute(requests.insert(), [entry.as_row() for entry in entries])
    engine.dispose()
    store = LedgerStore(url)  # upgrades in place
    assert len(store.rows()) == len(entries)
    assert_same(store)
    by_key: dict[str, float] = defaultdict(float)
    for entry in entries:
        if entry.kind == "request" and entry.key_id:
            by_key[entry.key_id] += entry.cost_usd
    assert store.spend_by_key() == pytest.approx(by_key)
    store.close()


def test_histogram_percentiles_land_in_the_right_bucket() -> None:
    values = [random.Random(5).lognormvariate(6, 1) for _ in range(2000)]
    counts: dict[int, int] = defaultdict(int)
    for value in values:
        counts[rollups.hist_index(value)] += 1
    ordered = sorted(values)
    for pct in (50, 90, 99):
        exact = ordered[int((len(ordered) - 1) * pct / 100)]
        assert rollups.hist_percentile(counts, pct) == pytest.approx(exact, rel=0.22)
    assert rollups.hist_percentile({}, 50) is None
    assert rollups.hist_index(0.2) == 0 and rollups.hist_index(1e9) == rollups.HIST_BUCKETS - 1


@pytest.mark.slow
def test_rollups_on_postgres_in_any_flush_order(postgres_url: str) -> None:  # noqa: F811
    store = LedgerStore(fresh_database(postgres_url, "rollups"))
    rng = random.Random(4)
    entries = _traffic(rng, 150)
    rng.shuffle(entries)
    for start in range(0, len(entries), 37):
        store.insert(entry.as_row() for entry in entries[start : start + 37])
    assert_same(store)
    window_matches_raw(store, rng)
    store.close()
