"""The learning budget: what shadow, audit and judge calls may spend per UTC day, over every
replica (`learn.budget_usd_per_day`).

What was spent is the evidence's `cost_usd` in the shared database
(`LearningStore.spent_today`), read at most every `REREAD_S`, plus what this replica spent
since that read. A call starts only when its worst case fits what is left beside the worst
cases of this replica's calls in flight. Evidence is written here too, under the same lock
as the read, so a cost is counted once: before its row is stored as this replica's own,
after it as part of the database's sum.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence

from smallfirst.learning.records import Evidence
from smallfirst.learning.store import DAY_S, LearningStore

log = logging.getLogger("smallfirst.learning")

REREAD_S = 30.0
"""How stale the other replicas' spend may be."""


class LearningBudget:
    def __init__(
        self, store: LearningStore, per_day: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.per_day = per_day
        self.clock = clock
        self.exhausted = False
        """The last call asked for did not fit what is left of today's budget."""
        self._lock = asyncio.Lock()
        self._day = -1.0
        self._read_at = -math.inf
        self._stored = 0.0
        """Today's spend in the database at the last read (every replica's)."""
        self._written = 0.0
        """This replica's spend stored since that read."""
        self._unwritten = 0.0
        """This replica's spend whose evidence is not stored yet."""
        self._reserved = 0.0
        """Worst cases of this replica's calls in flight."""
        self._told_day = -1.0

    @property
    def spent(self) -> float:
        """Today's learning spend as this replica knows it."""
        return self._stored + self._written + self._unwritten

    async def reserve(self, worst_usd: float) -> bool:
        """Hold `worst_usd` for a call about to start; False (and no call) when it does not
        fit (at a budget of 0, nothing does: even a free model's call). Every True is
        followed by one `settle`."""
        await self._refresh()
        if self.per_day <= 0 or self.spent + self._reserved + worst_usd > self.per_day:
            self._refused()
            return False
        self.exhausted = False
        self._reserved += worst_usd
        return True

    def settle(self, worst_usd: float, cost_usd: float) -> None:
        """A reserved call is over: it cost `cost_usd` (0 when it failed before an answer)."""
        self._reserved = max(0.0, self._reserved - worst_usd)
        self._unwritten += cost_usd

    async def write(self, evidence: Sequence[Evidence]) -> None:
        """Store `evidence`; its cost stops being this replica's unwritten spend."""
        async with self._lock:
            await asyncio.to_thread(self.store.add_evidence, evidence)
            day = self._today()
            for item in evidence:
                self._unwritten = max(0.0, self._unwritten - item.cost_usd)
                if item.ts >= day:  # yesterday's late rows are not today's spend
                    self._written += item.cost_usd

    async def _refresh(self) -> None:
        now = self.clock()
        day = self._today(now)
        if day == self._day and now - self._read_at < REREAD_S:
            return
        async with self._lock:
            stored = await asyncio.to_thread(self.store.spent_today, now)
            self._stored, self._written = stored, 0.0
            self._day, self._read_at = day, now

    def _today(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return now - now % DAY_S

    def _refused(self) -> None:
        self.exhausted = True
        if self._told_day != self._day:
            self._told_day = self._day
            log.warning(
                "learning: today's budget of $%.4f is spent ($%.4f); no more shadow, audit or "
                "judge calls until 00:00 UTC (learn.budget_usd_per_day)",
                self.per_day,
                self.spent,
            )
