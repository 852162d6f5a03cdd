"""Per task, the share of its answered requests per tier over time: how traffic moved down.

Read from the ledger's task rollups by (bucket, task, tier) (`ledger/rollup_read.py`:
whole buckets from the rollups, raw rows only for partial minutes at the window's edges), the
same reading as `task_report`'s, so the buckets add up to the task's `tiers` and the cost
follows the window and the number of groups, not the traffic. Every task gets the same grid
of buckets, empty ones included, so series line up and a gap in traffic shows as a gap.

The bucket width is the smallest of 5 min, 15 min, 1 h, 6 h, 1 day, 1 week (then whole weeks)
for which the window is at most `MAX_BUCKETS` (48) of them: 1 h up to 2 days, 6 h up to 12,
a day up to 48 days. Why 48: a series is drawn inside one table row (a terminal sparkline, a
small dashboard chart), where about that many points still read, and the query returns at
most that many rows per task and tier. Buckets start at whole multiples of their width in
UTC, so they read as clock hours and UTC days.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine

from smallfirst.ledger import rollup_read

MAX_BUCKETS = 48
WEEK_S = 7 * 86_400
STEPS_S = (300, 900, 3_600, 6 * 3_600, 86_400, WEEK_S)
LARGE_TIER = "large"
BLOCKS = "▁▂▃▄▅▆▇█"


@dataclass(slots=True)
class TierBucket:
    start: float
    """Unix seconds (UTC) the bucket starts at; it lasts the series' `bucket_s`."""
    requests: int = 0
    """Answered requests (with a tier) in the bucket."""
    tiers: dict[str, float] = field(default_factory=dict)
    """Share of those requests per tier, largest first (empty when there were none)."""

    @property
    def below_large(self) -> float | None:
        """Share served below the large tier (None without requests)."""
        if not self.requests:
            return None
        return 1.0 - self.tiers.get(LARGE_TIER, 0.0)


@dataclass(slots=True)
class TierSeries:
    bucket_s: int
    buckets: list[TierBucket] = field(default_factory=list)


def bucket_width(start: float, end: float) -> int:
    """Seconds per bucket for [start, end): the first round width that covers the window in
    at most MAX_BUCKETS buckets (one more once aligned to the width's multiples)."""
    span = end - start
    for step in STEPS_S:
        if span <= step * MAX_BUCKETS:
            return step
    return WEEK_S * math.ceil(span / MAX_BUCKETS / WEEK_S)


def tier_series(
    engine: Engine,
    start: float,
    until: float | None = None,
    *,
    now: float | None = None,
    key_id: str | None = None,
) -> dict[str, TierSeries]:
    """Per task with answered requests in [start, until) (of `key_id` if given), its series
    on one grid of buckets from `start` to `until` (None: to `now`, and a row stamped later,
    by a replica whose clock is ahead, widens the grid)."""
    end = until if until is not None else (time.time() if now is None else now)
    step = bucket_width(start, end)
    origin = math.floor(start / step) * step
    counts: dict[str, dict[int, dict[str, int]]] = {}
    with engine.connect() as conn:
        groups = rollup_read.read(
            conn,
            start,
            until,
            ("task", "tier"),
            key_id=key_id,
            series=rollup_read.Series(origin, step),
            source=rollup_read.TASKS,
        )
    for (bucket, task, tier, _status), totals in groups.items():
        if task is None or tier is None or not totals.requests:
            continue
        per_tier = counts.setdefault(task, {}).setdefault(int(bucket), {})
        per_tier[tier] = per_tier.get(tier, 0) + totals.requests
    size = max([_count(start, end, step)] + [max(buckets) + 1 for buckets in counts.values()])
    return {task: _series(per_bucket, origin, step, size) for task, per_bucket in counts.items()}


def _series(per_bucket: dict[int, dict[str, int]], origin: int, step: int, size: int) -> TierSeries:
    series = TierSeries(step)
    for i in range(size):
        tiers = per_bucket.get(i, {})
        total = sum(tiers.values())
        shares = {t: n / total for t, n in sorted(tiers.items(), key=lambda item: -item[1])}
        series.buckets.append(TierBucket(float(origin + i * step), total, shares))
    return series


def _count(start: float, end: float, step: int) -> int:
    """Buckets of `step` seconds, aligned to its multiples, that [start, end) touches."""
    origin = math.floor(start / step) * step
    return max(1, math.ceil((end - origin) / step))


def sparkline(series: TierSeries) -> str:
    """The share below the large tier per bucket, one block character each (`▁` none, `█`
    all; `·` for a bucket without requests), then the first and last bucket's share:
    `▁▁▃▆██ 0%→100% per 1h`."""
    shares = [bucket.below_large for bucket in series.buckets]
    blocks = "".join("·" if s is None else BLOCKS[round(s * (len(BLOCKS) - 1))] for s in shares)
    seen = [s for s in shares if s is not None]
    if not seen:
        return "-"
    return f"{blocks} {seen[0]:.0%}→{seen[-1]:.0%} per {width_text(series.bucket_s)}"


def width_text(seconds: int) -> str:
    for unit, size in (("w", WEEK_S), ("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
