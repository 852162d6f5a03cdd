"""Numbered schema migrations, applied in order and recorded in `_smallfirst_migrations`.

Each migration is a plain function taking a SQLAlchemy connection. A migration is never edited
once released: a schema change is a new function appended to `MIGRATIONS`. The tables are
defined here only; the store reflects them from the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)

Migration = Callable[[Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []
MIGRATIONS_TABLE = "_smallfirst_migrations"


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_requests(conn: Connection) -> None:
    metadata = MetaData()
    table = Table(
        "requests",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String(64), nullable=False, index=True),
        Column("kind", String(16), nullable=False, default="request"),
        Column("hop", Integer, nullable=False, default=0),
        Column("step", String(32)),
        Column("outcome", String(32)),
        Column("ts", Float, nullable=False, index=True),
        Column("endpoint", String(32), nullable=False),
        Column("key_id", String(64), index=True),
        Column("key_name", String(200)),
        Column("requested_model", String(200)),
        Column("model", String(200)),
        Column("tier", String(16)),
        Column("router", String(200)),
        Column("route_reason", Text),
        Column("route_score", Float),
        Column("stream", Boolean, nullable=False, default=False),
        Column("input_tokens", Integer, nullable=False, default=0),
        Column("output_tokens", Integer, nullable=False, default=0),
        Column("cost_usd", Float, nullable=False, default=0.0),
        Column("baseline_model", String(200)),
        Column("baseline_cost_usd", Float, nullable=False, default=0.0),
        Column("latency_ms", Float),
        Column("ttft_ms", Float),
        Column("status", Integer, nullable=False),
        Column("error", Text),
        Column("prompt", Text),
        Column("response", Text),
    )
    table.create(conn)


@migration
def m002_api_keys(conn: Connection) -> None:
    metadata = MetaData()
    table = Table(
        "api_keys",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False),
        Column("budget_usd", Float),
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("created_at", Float, nullable=False),
        Column("revoked_at", Float),
    )
    table.create(conn)


@migration
def m003_rollups(conn: Connection) -> None:
    """Per-minute and per-hour aggregates of the request rows (see `rollups.py`), built from
    the rows already in the ledger, in the same transaction."""
    from smallfirst.ledger import rollups

    dims = [Column(name, String(200), nullable=False) for name in rollups.DIMENSIONS[:-1]]
    counts = [Column(name, BigInteger, nullable=False) for name in rollups.COUNTS]
    amounts = [Column(name, Float, nullable=False) for name in rollups.AMOUNTS]
    histograms = [
        Column(name, Integer, nullable=False) for name in (*rollups.LATENCY, *rollups.TTFT)
    ]
    metadata = MetaData()
    table = Table(
        "rollups",
        metadata,
        Column("bucket_s", Integer, nullable=False),
        Column("bucket", BigInteger, nullable=False),
        *dims,
        Column("status_class", Integer, nullable=False),
        *counts,
        *amounts,
        *histograms,
        UniqueConstraint(*rollups.KEY_COLUMNS, name="rollups_group"),
    )
    table.create(conn)
    requests = Table("requests", MetaData(), autoload_with=conn)
    rollups.rebuild(conn, requests, table)


@migration
def m004_ledger_meta(conn: Connection) -> None:
    """Small named values the ledger keeps about itself (e.g. how far retention got)."""
    metadata = MetaData()
    table = Table(
        "ledger_meta",
        metadata,
        Column("name", String(200), primary_key=True),
        Column("value", Float, nullable=False),
    )
    table.create(conn)


@migration
def m005_requests_by_month(conn: Connection) -> None:
    """PostgreSQL: `requests` partitioned by month of `ts` (see `partitions.py`), the rows
    already there copied in, ids kept (64-bit from now on: the primary key becomes (id, ts),
    as a partitioned table's must hold the partition column). Other databases: nothing."""
    if conn.dialect.name != "postgresql":
        return
    from smallfirst.ledger import partitions

    old = "requests_unpartitioned"
    indexes = conn.execute(
        text("SELECT indexname FROM pg_indexes WHERE tablename = 'requests'")
    ).scalars()
    for index in list(indexes):  # their names are the new table's to take
        conn.execute(text(f'ALTER INDEX "{index}" RENAME TO "{old}_{index}"'))
    conn.execute(text(f"ALTER TABLE requests RENAME TO {old}"))
    conn.execute(
        text(f"CREATE TABLE requests (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (ts)")
    )
    conn.execute(text("ALTER TABLE requests ALTER COLUMN id TYPE BIGINT"))
    conn.execute(text("ALTER TABLE requests ADD CONSTRAINT requests_pkey PRIMARY KEY (id, ts)"))
    for column in ("request_id", "ts", "key_id"):
        conn.execute(text(f"CREATE INDEX ix_requests_{column} ON requests ({column})"))
    conn.execute(text("ALTER SEQUENCE requests_id_seq AS BIGINT OWNED BY requests.id"))
    partitions.create_default(conn)
    first, last = conn.execute(text(f"SELECT min(ts), max(ts) FROM {old}")).one()
    now = time.time()
    partitions.ensure_months(conn, min(first or now, now), max(last or now, now))
    conn.execute(text(f"INSERT INTO requests SELECT * FROM {old}"))
    conn.execute(text(f"DROP TABLE {old}"))
    partitions.ensure_ahead(conn, now)


CACHE_COLUMNS = ("cached_input_tokens", "cache_write_tokens")


@migration
def m006_cached_tokens(conn: Connection) -> None:
    """Prompt tokens read from / written to a provider's prompt cache, on request rows and
    in the rollups (rows from before count 0). A ledger whose rollups m003 created after
    these measures joined `rollups.COUNTS` has them there already."""
    for table in ("requests", "rollups"):
        present = {column["name"] for column in inspect(conn).get_columns(table)}
        for column in CACHE_COLUMNS:
            if column not in present:
                conn.execute(
                    text(f"ALTER TABLE {table} ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0")
                )


@migration
def m007_responses(conn: Connection) -> None:
    """Stored Responses API answers (`store: true`), for `previous_response_id` (see
    `responses_store.py`)."""
    metadata = MetaData()
    table = Table(
        "responses",
        metadata,
        Column("id", String(80), primary_key=True),
        Column("request_id", String(64), nullable=False),
        Column("key_id", String(64)),
        Column("created_at", Float, nullable=False, index=True),
        Column("conversation", Text, nullable=False),
        Column("response", Text, nullable=False),
    )
    table.create(conn)


@migration
def m008_response_cache(conn: Connection) -> None:
    """The response cache's entries and its per-task semantic thresholds (smallfirst/cache/)."""
    metadata = MetaData()
    Table(
        "response_cache",
        metadata,
        Column("key", String(160), primary_key=True),
        Column("scope", String(120), nullable=False, index=True),
        Column("route", String(200), nullable=False, index=True),
        Column("created_at", Float, nullable=False, index=True),
        Column("expires_at", Float, nullable=False),
        Column("entry", Text, nullable=False),
    )
    Table(
        "response_cache_thresholds",
        metadata,
        Column("task", String(200), primary_key=True),
        Column("threshold", Float, nullable=False),
        Column("evidence", Text, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    metadata.create_all(conn)


@migration
def m009_cache_hit_index(conn: Connection) -> None:
    """A partial index over response-cache hits only: the report finds them (and learns that
    there are none) without reading every request row."""
    conn.execute(
        text(
            "CREATE INDEX ix_requests_cache_hits ON requests (ts, requested_model) "
            "WHERE outcome = 'cache'"
        )
    )


@migration
def m010_learning(conn: Connection) -> None:
    """Learning from traffic (smallfirst/learning/): each request row names its task; the
    evidence gathered about each task (shadow calls, audits, verdicts, escalations), client
    feedback, and every version of every task's serving policy."""
    conn.execute(text("ALTER TABLE requests ADD COLUMN task VARCHAR(200)"))
    conn.execute(text("CREATE INDEX ix_requests_task_ts ON requests (task, ts)"))
    metadata = MetaData()
    Table(
        "learn_evidence",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String(64), nullable=False, index=True),
        Column("task", String(200), nullable=False),
        Column("ts", Float, nullable=False),
        Column("source", String(16), nullable=False),
        Column("output_kind", String(16), nullable=False),
        Column("input", Text),
        Column("small_model", String(200)),
        Column("small_answer", Text),
        Column("large_model", String(200)),
        Column("large_answer", Text),
        Column("agree", Boolean),
        Column("score", Float),
        Column("cost_usd", Float, nullable=False, default=0.0),
        Column("detail", Text),
        Index("ix_learn_evidence_task_ts", "task", "ts"),
    )
    Table(
        "learn_feedback",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("request_id", String(64), nullable=False, index=True),
        Column("key_id", String(64)),
        Column("ts", Float, nullable=False),
        Column("score", Float),
        Column("correct", Boolean),
        Column("answer", Text),
    )
    Table(
        "learn_policies",
        metadata,
        Column("task", String(200), primary_key=True),
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("created_at", Float, nullable=False, index=True),
        Column("policy", Text, nullable=False),
    )
    metadata.create_all(conn)


@migration
def m011_task_rollups(conn: Connection) -> None:
    """Rollups per task (`task_rollups.py`), built from the request rows that named one."""
    from smallfirst.ledger import task_rollups

    table = task_rollups.table(MetaData())
    table.create(conn)
    requests = Table("requests", MetaData(), autoload_with=conn)
    task_rollups.build(conn, requests, table)


@migration
def m012_route_rollups(conn: Connection) -> None:
    """Rollups per requested model with response-cache hits and the $ they saved
    (`route_rollups.py`), built from the request rows still stored; the report reads them, so
    m009's partial index over hits has no reader left and goes."""
    from smallfirst.ledger import route_rollups

    table = route_rollups.table(MetaData())
    table.create(conn)
    requests = Table("requests", MetaData(), autoload_with=conn)
    route_rollups.build(conn, requests, table)
    conn.execute(text("DROP INDEX IF EXISTS ix_requests_cache_hits"))


@migration
def m013_cache_ambiguity_margin(conn: Connection) -> None:
    """A semantic threshold's ambiguity margin (cache/ambiguity.py); rows before it have none,
    so their lookups keep working as they were calibrated (no ambiguity check)."""
    conn.execute(text("ALTER TABLE response_cache_thresholds ADD COLUMN margin FLOAT"))


def _migrations_table(metadata: MetaData) -> Table:
    return Table(
        MIGRATIONS_TABLE,
        metadata,
        Column("name", String(200), primary_key=True),
        Column("applied_at", Float, nullable=False),
    )


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    table = _migrations_table(MetaData())
    if not inspect(conn).has_table(MIGRATIONS_TABLE):
        table.create(conn)
    done = set(conn.execute(select(table.c.name)).scalars())
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        fn(conn)
        conn.execute(table.insert().values(name=name, applied_at=time.time()))
        applied.append(name)
    return applied
