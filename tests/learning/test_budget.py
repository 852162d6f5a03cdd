"""The daily learning budget over a real SQLite ledger shared by two replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from smallfirst.learning.budget import REREAD_S, LearningBudget
from smallfirst.learning.records import Evidence
from smallfirst.learning.store import DAY_S, LearningStore
from smallfirst.ledger.store import LedgerStore

NOON = 20_000 * DAY_S + DAY_S / 2


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def row(cost: float, ts: float, request_id: str = "r1") -> Evidence:
    return Evidence(request_id, "t", "shadow", "label", "x", "small", "a", "large", "a", True,
                    cost_usd=cost, ts=ts)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> LearningStore:
    return LearningStore(LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}").engine)


async def test_calls_in_flight_hold_their_worst_case(store: LearningStore) -> None:
    budget = LearningBudget(store, 1.0, Clock())
    assert await budget.reserve(0.6)
    assert not await budget.reserve(0.6)  # 0.6 is still held by the first call
    assert budget.exhausted
    budget.settle(0.6, 0.1)
    assert await budget.reserve(0.6) and not budget.exhausted
    assert budget.spent == pytest.approx(0.1)


async def test_a_cost_counts_once_before_and_after_its_row_is_stored(store) -> None:
    clock = Clock()
    budget = LearningBudget(store, 1.0, clock)
    assert await budget.reserve(0.5)
    budget.settle(0.5, 0.3)
    await budget.write([row(0.3, clock.now)])
    assert budget.spent == pytest.approx(0.3)
    clock.now += REREAD_S  # re-read: the row is the database's now, not also this replica's
    assert await budget.reserve(0.0)
    assert budget.spent == pytest.approx(0.3)


async def test_another_replicas_spend_arrives_with_the_next_read(store) -> None:
    clock = Clock()
    mine, other = LearningBudget(store, 1.0, clock), LearningBudget(store, 1.0, clock)
    assert await mine.reserve(0.1)
    assert await other.reserve(0.8)
    other.settle(0.8, 0.8)
    await other.write([row(0.8, clock.now, "other")])
    assert await mine.reserve(0.5)  # its read is not stale yet: 0.8 not seen
    mine.settle(0.5, 0.0)
    clock.now += REREAD_S
    assert not await mine.reserve(0.5)  # 0.8 elsewhere + 0.1 held here + 0.5 > 1.0
    assert mine.exhausted


async def test_a_new_utc_day_starts_a_new_budget(store) -> None:
    clock = Clock()
    budget = LearningBudget(store, 1.0, clock)
    assert await budget.reserve(1.0)
    budget.settle(1.0, 1.0)
    await budget.write([row(1.0, clock.now)])
    assert not await budget.reserve(0.01)
    clock.now += DAY_S / 2 + 1  # just past 00:00 UTC, well within REREAD_S of nothing
    assert await budget.reserve(0.01)
    assert budget.spent == pytest.approx(0.0)


async def test_a_zero_budget_allows_nothing(store) -> None:
    budget = LearningBudget(store, 0.0, Clock())
    assert not await budget.reserve(0.0001)
    assert not await budget.reserve(0.0)  # learning is off: not even a free local model
    assert budget.exhausted
