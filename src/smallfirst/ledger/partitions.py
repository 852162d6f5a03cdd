"""PostgreSQL: the raw `requests` table partitioned by calendar month (UTC) of `ts`.

Each month is a table `requests_pYYYYMM`; retention drops a month whose rows are all past
`rows_days` in one statement instead of deleting them row by row. `requests_default` catches
a row no month covers (a clock far off, or a gateway that ran months without creating the
months ahead), so an accepted row is never refused; creating that month later moves its rows
out of the default first. Months are created `MONTHS_AHEAD` ahead whenever the store opens and
at every retention pass. SQLite and other databases keep one plain table.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Connection, text

MONTHS_AHEAD = 3
DEFAULT = "requests_default"
_NAME = re.compile(r"^requests_p(\d{4})(\d{2})$")
_LOCK = 0x534D_4C46  # pg_advisory_xact_lock key: one partition change at a time


def month_start(ts: float) -> datetime:
    moment = datetime.fromtimestamp(ts, UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def name_of(start: datetime) -> str:
    return f"requests_p{start.year:04d}{start.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('requests')")
    )
    return found.first() is not None


def months(conn: Connection) -> dict[str, datetime]:
    """The month partitions that exist: name -> first instant of the month."""
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('requests')"
        )
    ).scalars()
    out = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            out[name] = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    return out


def create_default(conn: Connection) -> None:
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF requests DEFAULT"))


def ensure_months(conn: Connection, first_ts: float, last_ts: float) -> list[str]:
    """Create every month from `first_ts`'s to `last_ts`'s that is missing (rows of that
    month waiting in the default partition move into it). Returns the names created."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    existing = months(conn)
    created = []
    start, end = month_start(first_ts), month_start(last_ts)
    while start <= end:
        name = name_of(start)
        if name not in existing:
            _create_month(conn, name, start, next_month(start))
            created.append(name)
        start = next_month(start)
    return created


def ensure_ahead(conn: Connection, now: float) -> list[str]:
    """This month and the `MONTHS_AHEAD` after it exist (a no-op elsewhere than PostgreSQL)."""
    if not is_partitioned(conn):
        return []
    last = month_start(now)
    for _ in range(MONTHS_AHEAD):
        last = next_month(last)
    return ensure_months(conn, now, last.timestamp())


def _create_month(conn: Connection, name: str, start: datetime, end: datetime) -> None:
    """A month as its own table, filled from the default partition, then attached: a
    partition cannot be created over rows the default partition already holds."""
    low, high = start.timestamp(), end.timestamp()
    bounds = {"low": low, "high": high}
    conn.execute(text(f"CREATE TABLE {name} (LIKE requests INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE ts >= :low AND ts < :high "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    conn.execute(text(f"ALTER TABLE {name} ADD CHECK (ts >= {low!r} AND ts < {high!r})"))
    conn.execute(
        text(
            f"ALTER TABLE requests ATTACH PARTITION {name} FOR VALUES FROM ({low!r}) TO ({high!r})"
        )
    )


def drop_before(conn: Connection, cutoff: float) -> int:
    """Drop every month that ends at or before `cutoff`; returns the rows they held."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    dropped = 0
    for name, start in sorted(months(conn).items(), key=lambda item: item[1]):
        if next_month(start).timestamp() > cutoff:
            break
        dropped += conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0
        conn.execute(text(f"DROP TABLE {name}"))
    return dropped
