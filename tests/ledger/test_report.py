"""The report's sums: spend, savings vs the baseline, share per tier; and --since parsing."""

from __future__ import annotations

import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.ledger import LedgerEntry, LedgerStore
from smallfirst.ledger.report import parse_since, summarize


def test_summary_counts_request_rows_and_computes_savings(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    rows = [
        LedgerEntry(
            request_id="a", ts=10, model="s", tier="small", cost_usd=1, baseline_cost_usd=10
        ),
        LedgerEntry(
            request_id="b", ts=20, model="s", tier="small", cost_usd=1, baseline_cost_usd=10
        ),
        LedgerEntry(
            request_id="c", ts=30, model="L", tier="large", cost_usd=10, baseline_cost_usd=10
        ),
        LedgerEntry(request_id="d", ts=40, status=400, error="bad"),
    ]
    hop = LedgerEntry.for_hop(rows[2], 1, "answer", model="s", tier="small", cost_usd=99)
    store.insert(r.as_row() for r in [*rows, hop])
    summary = summarize(store)
    totals = summary["totals"]
    assert (totals["requests"], totals["errors"]) == (4, 1)
    assert totals["cost_usd"] == 12 and totals["baseline_cost_usd"] == 30
    assert totals["savings_usd"] == 18 and totals["savings_share"] == pytest.approx(0.6)
    shares = {t["tier"]: t["share"] for t in summary["tiers"]}
    assert shares == {"small": pytest.approx(2 / 3), "large": pytest.approx(1 / 3), None: None}
    later = summarize(store, since=25)["totals"]
    assert later["requests"] == 2 and later["cost_usd"] == 10
    empty = summarize(store, since=1000)["totals"]
    assert empty["requests"] == 0 and empty["savings_share"] is None
    store.close()


def test_parse_since() -> None:
    assert parse_since("30m", now=10_000) == 10_000 - 1800
    assert parse_since("7d", now=1e6) == 1e6 - 7 * 86400
    assert parse_since("2026-01-01") == parse_since("2026-01-01T00:00:00+00:00")
    with pytest.raises(InvalidRequestError, match="--since"):
        parse_since("yesterday")
