"""Dashboard aggregations on a seeded SQLite ledger, against numbers worked out by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, text

from smallfirst.ledger import LedgerStore
from smallfirst.server.dashboard import data
from smallfirst.server.dashboard.timerange import TimeRange
from tests.server.dashboard_seed import HOUR, seed_ledger
from tests.server.pg_cluster import postgres_url  # noqa: F401 - fixture

NOW = 1_795_000_500.0
DAY = TimeRange(NOW - 24 * HOUR, NOW)


@pytest.fixture(params=["sqlite", "postgres"])
def conn(request: pytest.FixtureRequest, tmp_path) -> Iterator[Connection]:
    """The seeded ledger on SQLite and on PostgreSQL: the same numbers must come out of both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = LedgerStore(url)
    seed_ledger(store, NOW)
    try:
        with store.engine.connect() as connection:
            yield connection
    finally:
        if request.param == "postgres":  # the session's one database: empty it for the next
            with store.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        store.close()


def test_percentile_interpolates_between_ranks() -> None:
    values = [100.0, 200.0, 900.0, 400.0]
    assert data.percentile(values, 50) == 300.0
    assert data.percentile(values, 90) == pytest.approx(750.0)
    assert data.percentile(values, 0) == 100.0
    assert data.percentile(values, 100) == 900.0
    assert data.percentile([7.0], 99) == 7.0
    assert data.percentile([], 50) is None


def test_summary_totals_savings_and_escalation(conn: Connection) -> None:
    s = data.summary(conn, DAY)
    assert s["requests"] == 5  # r0 is two days old
    assert s["errors"] == 1
    assert s["error_rate"] == pytest.approx(0.2)
    assert s["cost_usd"] == pytest.approx(0.08)
    assert s["baseline_usd"] == pytest.approx(0.11)
    assert s["savings_usd"] == pytest.approx(0.03)
    assert s["savings_pct"] == pytest.approx(100 * 0.03 / 0.11)
    assert s["escalated"] == 1
    assert s["escalation_rate"] == pytest.approx(0.2)
    assert (s["input_tokens"], s["output_tokens"]) == (500, 50)


def test_summary_latency_ignores_errors(conn: Connection) -> None:
    latency = data.summary(conn, DAY)["latency"]
    # successful latencies 100, 200, 400, 900; TTFT 20, 30, 100, 400
    assert latency["p50_ms"] == pytest.approx(300.0)
    assert latency["p90_ms"] == pytest.approx(750.0)
    assert latency["p95_ms"] == pytest.approx(825.0)
    assert latency["p99_ms"] == pytest.approx(885.0)
    assert latency["ttft_p50_ms"] == pytest.approx(65.0)


def test_empty_window_has_no_rates(conn: Connection) -> None:
    s = data.summary(conn, TimeRange(NOW + HOUR, NOW + 2 * HOUR))
    assert s["requests"] == 0
    assert s["escalation_rate"] is None
    assert s["savings_pct"] is None
    assert s["latency"]["p50_ms"] is None


def test_window_bounds_select_rows(conn: Connection) -> None:
    assert data.summary(conn, TimeRange(NOW - 2.5 * HOUR, NOW))["requests"] == 2
    wide = data.summary(conn, TimeRange(NOW - 72 * HOUR, NOW))
    assert wide["requests"] == 6
    assert wide["cost_usd"] == pytest.approx(1.08)


def test_series_buckets_split_by_tier_and_model(conn: Connection) -> None:
    series = data.series(conn, DAY)
    assert series["bucket_s"] == 900
    assert len(series["buckets"]) == len(series["cost_usd"]) == 96
    assert sum(series["by_tier"]["small"]["requests"]) == 3
    assert sum(series["by_tier"]["large"]["requests"]) == 2
    assert sum(series["by_model"]["gpt-big"]["cost_usd"]) == pytest.approx(0.08)
    assert sum(series["baseline_usd"]) == pytest.approx(0.11)
    # r1 arrived one hour before NOW: it sits in the bucket that holds NOW - 1h
    index = next(
        i
        for i, start in enumerate(series["buckets"])
        if start <= NOW - HOUR < start + series["bucket_s"]
    )
    assert series["by_tier"]["small"]["requests"][index] == 1
    assert series["baseline_usd"][index] == pytest.approx(0.010)


def test_routes_escalation_rate_and_tiers(conn: Connection) -> None:
    routes = {r["route"]: r for r in data.routes(conn, DAY)}
    auto, direct = routes["auto"], routes[data.DIRECT_ROUTE]
    assert (auto["requests"], auto["escalated"]) == (4, 1)
    assert auto["escalation_rate"] == pytest.approx(0.25)
    assert auto["tiers"] == {"small": 3, "large": 1}
    assert auto["savings_usd"] == pytest.approx(0.03)
    assert (direct["requests"], direct["escalation_rate"]) == (1, 0.0)
    assert direct["cost_usd"] == pytest.approx(0.05)


def test_latency_by_model(conn: Connection) -> None:
    rows = {r["model"]: r for r in data.latency_by_model(conn, DAY)}
    assert rows["gemma"]["requests"] == 2  # the 502 is left out
    assert rows["gemma"]["p50_ms"] == pytest.approx(150.0)
    assert rows["gpt-big"]["p90_ms"] == pytest.approx(400 + 0.9 * 500)
    assert rows["gpt-big"]["ttft_p50_ms"] == pytest.approx(250.0)


def test_top_keys_by_spend(conn: Connection) -> None:
    keys = data.top_keys(conn, DAY)
    assert [k["key_name"] for k in keys] == ["bob", "alice", "(no key)"]
    assert keys[0]["cost_usd"] == pytest.approx(0.08)
    assert keys[1]["savings_usd"] == pytest.approx(0.03)
    assert [k["requests"] for k in keys] == [2, 2, 1]
    assert data.top_keys(conn, DAY, limit=1)[0]["key_name"] == "bob"


def test_recent_newest_first_with_hops(conn: Connection) -> None:
    items = data.recent(conn, DAY)
    assert [i["request_id"] for i in items] == ["r1", "r2", "r3", "r4", "r5"]
    cascade = items[2]
    assert cascade["escalated"] is True
    assert [h["step"] for h in cascade["hops"]] == ["answer", "check", "escalate", "answer"]
    assert cascade["hops"][1]["outcome"] == "failed"
    assert items[0]["hops"] == [] and items[0]["escalated"] is False
    assert items[0]["route_reason"] == "rule: short prompt -> small"
    assert items[0]["time"].endswith("Z")
    assert len(data.recent(conn, DAY, limit=2)) == 2


def test_earliest_is_the_oldest_request(conn: Connection) -> None:
    assert data.earliest(conn) == pytest.approx(NOW - 48 * HOUR)
