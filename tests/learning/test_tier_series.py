"""The share per tier over time, per task, from a real ledger's request rows at known times."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from smallfirst.learning.task_report import task_summaries
from smallfirst.learning.tier_series import TierSeries, bucket_width, sparkline, tier_series
from smallfirst.ledger import LedgerEntry, LedgerStore
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture

HOUR, DAY = 3_600, 86_400
T0 = 20_717 * DAY  # a UTC midnight
END = T0 + DAY


def served(tier: str | None, hour: float, task: str | None = "intents", **fields) -> LedgerEntry:
    return LedgerEntry(
        secrets.token_hex(6), task=task, model=tier, tier=tier, ts=T0 + hour * HOUR, **fields
    )


ROWS = [
    *(served("large", 0.1) for _ in range(3)),
    served("small", 0.9),
    *(served("small", 2.5) for _ in range(3)),
    served("large", 2.99),
    *(served("small", 3.0) for _ in range(4)),
    served("large", 0.5, task="slots"),
    served("large", 23.5, task="slots", key_id="bob"),
    # none of these is an answered request of a task in [T0, END):
    served("small", 0.2, kind="hop", hop=1),
    served("small", 0.3, task=None),
    served(None, 0.4, status=502),
    served("small", -0.1),
    served("small", 24.0),
]  # fmt: skip


@pytest.fixture
def ledger(tmp_path) -> Iterator[LedgerStore]:
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    store.insert(row.as_row() for row in ROWS)
    yield store
    store.close()


def test_buckets_and_shares_per_task(ledger) -> None:
    found = tier_series(ledger.engine, T0, END)
    assert sorted(found) == ["intents", "slots"]
    assert_the_day(found)


@pytest.mark.slow
def test_the_same_on_postgres(postgres_url) -> None:  # noqa: F811 - the fixture above
    store = LedgerStore(fresh_database(postgres_url, "series"))
    store.insert(row.as_row() for row in ROWS)
    assert_the_day(tier_series(store.engine, T0, END))
    store.close()


def assert_the_day(found: dict[str, TierSeries]) -> None:
    intents = found["intents"]
    assert intents.bucket_s == HOUR and len(intents.buckets) == 24
    assert [b.start for b in intents.buckets] == [T0 + i * HOUR for i in range(24)]
    first, empty, third, fourth = intents.buckets[:4]
    assert (first.requests, first.tiers) == (4, {"large": 0.75, "small": 0.25})
    assert list(first.tiers) == ["large", "small"]  # largest share first
    assert (empty.requests, empty.tiers, empty.below_large) == (0, {}, None)
    assert (third.requests, third.tiers) == (4, {"small": 0.75, "large": 0.25})
    assert (fourth.requests, fourth.tiers, fourth.below_large) == (4, {"small": 1.0}, 1.0)
    assert all(b.requests == 0 for b in intents.buckets[4:])
    slots = found["slots"]
    assert [(i, b.tiers) for i, b in enumerate(slots.buckets) if b.requests] == [
        (0, {"large": 1.0}),
        (23, {"large": 1.0}),
    ]


def test_one_keys_requests(ledger) -> None:
    (slots,) = tier_series(ledger.engine, T0, END, key_id="bob").values()
    assert [b.requests for b in slots.buckets] == [0] * 23 + [1]


def test_the_grid_starts_at_a_whole_width_before_the_window(ledger) -> None:
    found = tier_series(ledger.engine, T0 + 2.55 * HOUR, T0 + 14 * HOUR)  # from 2:33
    intents = found["intents"]
    assert intents.bucket_s == 15 * 60  # 11.45 h: under 48 quarter hours
    assert intents.buckets[0].start == T0 + 2.5 * HOUR
    assert len(intents.buckets) == 46
    assert [b.requests for b in intents.buckets[:3]] == [0, 1, 4]  # 2:33-2:45, 2:45, 3:00


def test_a_row_stamped_after_now_widens_the_grid(ledger) -> None:
    """Without `until` the grid ends at `now`; a replica's clock ahead of it loses no row."""
    found = tier_series(ledger.engine, T0, now=T0 + 23 * HOUR)  # 23 hourly buckets
    slots, intents = found["slots"], found["intents"]
    assert slots.bucket_s == HOUR and len(slots.buckets) == len(intents.buckets) == 25
    assert (slots.buckets[23].requests, intents.buckets[24].requests) == (1, 1)


@pytest.mark.parametrize(
    ("span_s", "width_s"),
    [
        (HOUR, 300),
        (4 * HOUR, 300),
        (12 * HOUR, 900),
        (DAY, HOUR),
        (2 * DAY, HOUR),
        (7 * DAY, 6 * HOUR),
        (30 * DAY, DAY),
        (365 * DAY, 2 * 7 * DAY),
    ],
)
def test_bucket_width_keeps_a_window_within_48_buckets(span_s, width_s) -> None:
    assert bucket_width(T0, T0 + span_s) == width_s
    assert span_s / width_s <= 48


def test_the_sparkline_shows_the_share_below_large(ledger) -> None:
    found = tier_series(ledger.engine, T0, END)
    assert sparkline(found["intents"]) == "▃·▆█" + "·" * 20 + " 25%→100% per 1h"
    assert sparkline(found["slots"]) == "▁" + "·" * 22 + "▁ 0%→0% per 1h"
    assert sparkline(TierSeries(DAY, [])) == "-"


def test_task_summaries_carry_the_series_of_their_window(ledger) -> None:
    intents, _ = task_summaries(ledger.engine, None, T0, END)
    assert intents.task == "intents" and intents.series is not None
    answered = sum(b.requests for b in intents.series.buckets)
    assert answered == 12
    for tier, share in intents.tiers.items():
        per_bucket = sum(b.requests * b.tiers.get(tier, 0.0) for b in intents.series.buckets)
        assert per_bucket / answered == pytest.approx(share)
    alltime = {s.task: s for s in task_summaries(ledger.engine, None, now=END + HOUR)}
    series = alltime["intents"].series
    assert series is not None and series.bucket_s == HOUR
    assert series.buckets[0].start == T0 - HOUR  # the task's first row, at 23:54 the day before
    assert alltime["slots"].series.buckets[0].start == T0 - HOUR  # one grid for every task
    bobs = task_summaries(ledger.engine, None, T0, END, key_id="bob")
    assert [s.task for s in bobs] == ["slots"]


def test_the_query_reads_an_index_not_the_whole_table(ledger) -> None:
    """On SQLite the window is an index range (or one key's rows), never a table scan."""
    seen: list[tuple[str, object]] = []

    def grab(_conn, _cursor, statement, params, _context, _many) -> None:
        seen.append((statement, params))

    event.listen(ledger.engine, "before_cursor_execute", grab)
    tier_series(ledger.engine, T0, END)
    tier_series(ledger.engine, T0, END, key_id="bob")
    event.remove(ledger.engine, "before_cursor_execute", grab)
    with ledger.engine.connect() as conn:
        for statement, params in seen:
            plan = " ".join(
                row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            )
            assert "USING INDEX" in plan and "SCAN requests" not in plan, plan


def test_tasks_outlive_their_raw_rows(ledger) -> None:
    """Read from the rollups: once retention deletes the raw rows, the figures stay."""
    before = {s.task: (s.requests, s.tiers) for s in task_summaries(ledger.engine, None, T0, END)}
    series = tier_series(ledger.engine, T0, END)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM requests"))
    after = {s.task: (s.requests, s.tiers) for s in task_summaries(ledger.engine, None, T0, END)}
    assert after == before and before["intents"][0] == 13  # the 502 included
    assert tier_series(ledger.engine, T0, END) == series
