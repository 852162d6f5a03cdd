"""Route rollups and the report's cache summary read from them: equal to the raw rows whatever
the flush order and wherever a window starts (inside a minute, on a minute, hour or day), built
for a ledger from before them (m012), and unchanged when retention deletes the raw rows."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, create_engine, inspect, select, text

from smallfirst.config import RetentionConfig
from smallfirst.ledger import LedgerEntry, LedgerStore, rollups, route_rollups
from smallfirst.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE
from smallfirst.ledger.report import cache_by_route, summarize
from smallfirst.ledger.retention import DAY_S, prune
from tests.ledger.test_rollups import T0, _traffic
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture

ROUTES = [None, "auto", "small", "cascade-x"]
MIDNIGHT = math.ceil(T0 / DAY_S) * DAY_S
HIT_INDEX = "ix_requests_cache_hits"
"""m009's partial index over hits, which nothing reads once the report reads route rollups."""


def traffic_with_hits(rng: random.Random, count: int, days: float = 3.0) -> list[LedgerEntry]:
    """`_traffic` spread over `days`, a fifth of it within two minutes of the first midnight
    (so minutes, hours and a day meet among many rows), each request naming a route, about a
    third of the successful ones cache hits ($0, baseline kept). Baseline $ are multiples of
    1/1024, so their sums are exact in any order."""
    entries = _traffic(rng, count)
    moved: dict[str, float] = {}
    for entry in entries:
        crowded = MIDNIGHT + rng.uniform(-120, 120)
        spread = T0 + rng.uniform(0, days * DAY_S)
        ts = moved.setdefault(entry.request_id, crowded if rng.random() < 0.2 else spread)
        entry.ts = ts + (rng.uniform(0, 2) if entry.kind == "hop" else 0.0)
        entry.requested_model = rng.choice(ROUTES)
        entry.baseline_cost_usd = rng.randint(0, 4000) / 1024
        if entry.kind == "request" and entry.status == 200 and rng.random() < 0.35:
            entry.outcome, entry.cost_usd = "cache", 0.0
        elif entry.kind == "hop" and rng.random() < 0.05:
            entry.outcome = "cache"  # never counted: hits are request rows
    return entries


def expected_summary(rows: list[dict[str, Any]], since: float | None) -> list[dict[str, Any]]:
    """The cache summary computed from the raw rows, as the report did before route rollups
    (request rows of the chat and completions endpoints, per requested model, with a hit)."""
    per: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        if row["kind"] != "request" or row["endpoint"] not in ("chat", "completions"):
            continue
        if row["requested_model"] is None or (since is not None and row["ts"] < since):
            continue
        slot = per[row["requested_model"]]
        slot[0] += 1
        if row["outcome"] == "cache":
            slot[1] += 1
            slot[2] += row["baseline_cost_usd"]
    out = [
        {"route": route, "requests": n, "hits": hits, "hit_rate": hits / n, "saved_usd": saved}
        for route, (n, hits, saved) in per.items()
        if hits
    ]
    return sorted(out, key=lambda row: (-row["saved_usd"], row["route"]))


def expected_groups(rows: list[dict[str, Any]]) -> dict[tuple, list]:
    """The route rollups, computed from the raw rows directly (not with the writer's code)."""
    out: dict[tuple, list] = defaultdict(lambda: [0, 0, 0.0])
    for row in rows:
        if row["kind"] != "request":
            continue
        hit = row["outcome"] == "cache"
        for step in rollups.GRANULARITIES:
            key = (
                step,
                math.floor(row["ts"] / step) * step,
                row["endpoint"],
                row["requested_model"] or "",
                row["status"] // 100,
            )
            out[key][0] += 1
            out[key][1] += hit
            out[key][2] += row["baseline_cost_usd"] if hit else 0.0
    return dict(out)


def stored_groups(store: LedgerStore) -> dict[tuple, list]:
    table = store.route_rollups
    with store.engine.connect() as conn:
        rows = conn.execute(select(table)).mappings().all()
    return {
        tuple(row[name] for name in route_rollups.KEY_COLUMNS): [
            row[name] for name in route_rollups.MEASURES
        ]
        for row in rows
    }


def windows(rng: random.Random, rows: list[dict[str, Any]]) -> list[float | None]:
    """Window starts: none; at a hit and just after it (inside its minute, where the raw rows
    are read); inside a minute anywhere; on the midnight and the minutes about it; on a
    minute, a quarter hour, an hour and a day anywhere."""
    hits = [r["ts"] for r in rows if r["outcome"] == "cache" and r["kind"] == "request"]
    at_hits = [ts + shift for ts in rng.sample(hits, 4) for shift in (0.0, 1e-3)]
    inside = [T0 + rng.uniform(-600, 3.2 * DAY_S) for _ in range(4)]
    midnight = [MIDNIGHT + shift for shift in (-60, -30.5, 0, 29.5, 60)]
    whole = [
        math.ceil((T0 + rng.uniform(0, 2 * DAY_S)) / step) * step for step in (60, 900, 3600, 86400)
    ]
    return [None, *at_hits, *inside, *midnight, *whole]


def assert_summaries_match(store: LedgerStore, rng: random.Random) -> None:
    rows = store.rows()
    assert any(r["outcome"] == "cache" for r in rows)
    for since in windows(rng, rows):
        assert cache_by_route(store, since) == expected_summary(rows, since), since


def _store_shuffled(store: LedgerStore, entries: list[LedgerEntry], rng: random.Random) -> None:
    entries = list(entries)
    rng.shuffle(entries)  # hops before their request row, in other batches
    cuts = sorted(rng.sample(range(len(entries) + 1), 6))
    for low, high in zip([0, *cuts], [*cuts, len(entries)], strict=True):
        store.insert(entry.as_row() for entry in entries[low:high])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cache_summary_from_rollups_equals_the_raw_rows(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        _store_shuffled(store, traffic_with_hits(rng, 300), rng)
        assert stored_groups(store) == expected_groups(store.rows())
        assert_summaries_match(store, rng)
        assert summarize(store)["cache"] == expected_summary(store.rows(), None)
    finally:
        store.close()


def test_m012_builds_them_for_an_existing_ledger(tmp_path) -> None:
    upgrade_in_place(f"sqlite:///{tmp_path / 'm011.db'}")


@pytest.mark.slow
def test_m012_on_postgres(postgres_url: str) -> None:  # noqa: F811
    upgrade_in_place(fresh_database(postgres_url, "m011"))


def upgrade_in_place(url: str) -> None:
    rng = random.Random(9)
    rows = [entry.as_row() for entry in traffic_with_hits(rng, 200)]
    engine = create_engine(url)
    with engine.begin() as conn:  # the ledger as m011 left it, its rows stored then
        conn.execute(
            text(
                f"CREATE TABLE {MIGRATIONS_TABLE} (name VARCHAR(200) PRIMARY KEY, "
                "applied_at FLOAT NOT NULL)"
            )
        )
        for name, fn in [(n, fn) for n, fn in MIGRATIONS if n < "m012"]:
            fn(conn)
            conn.execute(text(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (:n, 0)"), {"n": name})
        metadata = MetaData()
        requests = Table("requests", metadata, autoload_with=conn)
        rollups.apply_batch(conn, requests, Table("rollups", metadata, autoload_with=conn), rows)
        assert HIT_INDEX in {index["name"] for index in inspect(conn).get_indexes("requests")}
    engine.dispose()
    store = LedgerStore(url)  # m012
    try:
        assert len(store.rows()) == len(rows)
        assert stored_groups(store) == expected_groups(store.rows())
        assert_summaries_match(store, rng)
        indexes = {index["name"] for index in inspect(store.engine).get_indexes("requests")}
        assert HIT_INDEX not in indexes
    finally:
        store.close()


def test_the_cache_summary_outlives_the_raw_rows(tmp_path) -> None:
    rng = random.Random(5)
    entries = traffic_with_hits(rng, 300, days=500)
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        store.insert(entry.as_row() for entry in entries)
        now = math.ceil((T0 + 500 * DAY_S) / DAY_S) * DAY_S
        starts = [None, now - 450 * DAY_S, now - 200 * DAY_S]  # whole days: no raw edge
        before = [cache_by_route(store, since) for since in starts]
        assert before == [expected_summary(store.rows(), since) for since in starts]
        pruned = prune(store, RetentionConfig(prompts_days=30, rows_days=100), now=now)
        assert pruned.rows > len(entries) // 2 and pruned.finished
        assert [cache_by_route(store, since) for since in starts] == before
        assert all(before)
    finally:
        store.close()


@pytest.mark.slow
def test_cache_summary_on_postgres(postgres_url: str) -> None:  # noqa: F811
    rng = random.Random(4)
    store = LedgerStore(fresh_database(postgres_url, "routes"))
    try:
        _store_shuffled(store, traffic_with_hits(rng, 200), rng)
        assert stored_groups(store) == expected_groups(store.rows())
        assert_summaries_match(store, rng)
    finally:
        store.close()
