"""Parsing the dashboard's `since` / `until` and choosing chart buckets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smallfirst.errors import InvalidRequestError
from smallfirst.ledger.rollups import GRANULARITIES
from smallfirst.server.dashboard.timerange import (
    MIN_STORED_BUCKETS,
    TimeRange,
    parse_range,
    parse_time,
)

NOW = 1_795_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - 1800),
        ("24h", NOW - 86400),
        ("7d", NOW - 7 * 86400),
        ("1.5h", NOW - 5400),
        ("1700000000", 1_700_000_000.0),
        ("2026-11-24T18:00:00Z", 1_795_543_200.0),
        ("2026-11-24T18:00:00", 1_795_543_200.0),  # naive means UTC
        ("2026-11-24T19:00:00+01:00", 1_795_543_200.0),
    ],
)
def test_parse_time_spellings(text: str, expected: float) -> None:
    assert parse_time(text, now=NOW, param="since") == pytest.approx(expected)


@pytest.mark.parametrize("text", ["soon", "-3", "nan", "12x", "2026-02-30"])
def test_parse_time_rejects_with_help(text: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_time(text, now=NOW, param="until")
    assert info.value.param == "until"
    assert "ISO 8601" in info.value.message and "24h" in info.value.message


def test_range_defaults_and_all() -> None:
    assert parse_range(None, None, now=NOW) == TimeRange(NOW - 86400, NOW)
    assert parse_range("all", None, now=NOW, earliest=NOW - 10 * 86400).since == NOW - 10 * 86400
    assert parse_range("all", None, now=NOW, earliest=None).since == NOW - 3600
    with pytest.raises(InvalidRequestError, match="must be before"):
        parse_range("1h", "2h", now=NOW)


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (3600, 60),
        (86400, 900),
        (7 * 86400, 3 * 3600),
        (36 * 3600, 3600),  # 30 min is not stored; 36 hourly points are enough
        (30 * 86400, 86400),  # 12 h is not stored; 30 daily points are enough
        (20 * 86400, 6 * 3600),  # 20 daily points would be too few
        (90 * 86400, 86400),
        (20 * 365 * 86400, None),
    ],
)
def test_bucket_keeps_charts_small(span: float, bucket: int | None) -> None:
    chosen = TimeRange(NOW - span, NOW).bucket_s()
    if bucket is not None:
        assert chosen == bucket
    assert span / chosen <= 96


@given(st.floats(min_value=1, max_value=400 * 86400))
def test_bucket_is_stored_unless_too_few_points(span: float) -> None:
    chosen = TimeRange(NOW - span, NOW).bucket_s()
    assert span / chosen <= 96
    if chosen not in GRANULARITIES:
        coarser = [g for g in GRANULARITIES if g > chosen and g % chosen == 0]
        assert not coarser or span / coarser[0] < MIN_STORED_BUCKETS
