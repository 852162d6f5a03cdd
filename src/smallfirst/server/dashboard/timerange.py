"""The dashboard's time window: parse `since` / `until` and pick a chart bucket size.

Times reach us from a URL, so every accepted spelling is explicit and anything else is a 400
that says what would have worked. Ledger times are unix seconds (UTC); so is everything here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from smallfirst.errors import InvalidRequestError
from smallfirst.ledger.rollups import GRANULARITIES

DEFAULT_WINDOW_S = 24 * 3600
MAX_BUCKETS = 96
MIN_STORED_BUCKETS = 24
"""A chart whose round step is not a rollup granularity takes the next coarser granularity
instead when that still draws at least this many points (a day's hourly chart): its points
are then whole rollup rows rather than sums of finer ones. A 30-day chart of 12-hour points
reads 720 hourly rows per group; of daily points, 30 daily ones (plus the partial days at the
edges), which on PostgreSQL at 10M requests is the difference between meeting the
dashboard's 300 ms and not."""
BUCKET_STEPS_S = (
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    7 * 86400,
    30 * 86400,
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HELP = (
    "use ISO 8601 (2026-11-24T18:00:00Z), unix seconds (1795000000), "
    "or a duration back from now (30m, 24h, 7d)"
)
LATEST_TS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The last second a datetime can show: later (or before 1970) times are refused, not a 500."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    since: float
    until: float
    key_id: str | None = None
    """Only this API key's requests (a client key on the gateway's dashboard)."""

    @property
    def span_s(self) -> float:
        return self.until - self.since

    def bucket_s(self) -> int:
        """The smallest 'round' step that keeps a chart under MAX_BUCKETS points, or the
        next rollup granularity above it (see MIN_STORED_BUCKETS)."""
        step = self._round_step()
        if step in GRANULARITIES:
            return step
        for stored in GRANULARITIES:
            if stored > step and stored % step == 0:
                return stored if self.span_s / stored >= MIN_STORED_BUCKETS else step
        return step

    def _round_step(self) -> int:
        for step in BUCKET_STEPS_S:
            if self.span_s / step <= MAX_BUCKETS:
                return step
        return math.ceil(self.span_s / MAX_BUCKETS)

    def as_json(self) -> dict[str, object]:
        return {
            "since": self.since,
            "until": self.until,
            "since_iso": iso(self.since),
            "until_iso": iso(self.until),
            "bucket_s": self.bucket_s(),
        }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str, *, now: float, param: str) -> float:
    """One bound: ISO 8601 (naive means UTC), unix seconds, or `<n><s|m|h|d|w>` before now,
    between 1970 and the year 9999."""
    seconds = _seconds(text, now=now, param=param)
    if not 0 <= seconds <= LATEST_TS:
        raise InvalidRequestError(
            f"{param}: {text!r} is out of range (1970-01-01 to 9999-12-31); {_HELP}", param=param
        )
    return seconds


def _seconds(text: str, *, now: float, param: str) -> float:
    value = text.strip()
    duration = _DURATION.match(value.lower())
    if duration:
        return now - float(duration.group(1)) * _UNIT_S[duration.group(2)]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
        raise InvalidRequestError(f"{param}: {text!r} is not a valid time; {_HELP}", param=param)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            f"{param}: {text!r} is not a valid time; {_HELP}", param=param
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_range(
    since: str | None, until: str | None, *, now: float, earliest: float | None = None
) -> TimeRange:
    """The window asked for; default the last 24 hours. `since=all` starts at `earliest`
    (the first ledger row), so "all time" works without the caller knowing that date."""
    end = parse_time(until, now=now, param="until") if until else now
    if since is None or since.strip() == "":
        start = end - DEFAULT_WINDOW_S
    elif since.strip().lower() == "all":
        start = min(earliest, end - 3600) if earliest is not None else end - 3600
    else:
        start = parse_time(since, now=now, param="since")
    if start >= end:
        raise InvalidRequestError(
            f"since ({iso(start)}) must be before until ({iso(end)})", param="since"
        )
    return TimeRange(start, end)
