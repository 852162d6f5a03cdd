"""Retention: blank old prompt/answer text first, delete old raw rows later; rollups stay.

Spend per key, budgets, the report and the dashboard's totals come from the rollups, so
pruning raw rows never changes them; what goes is the detail (recent requests, drill-downs,
exact percentiles of a window that old, exports). Work is done in batches of `batch_rows`,
one short transaction each, so the ledger writer is never held up for long. How far prompt
blanking got is kept in `ledger_meta`, so each pass starts where the last one stopped instead
of re-reading every row it already blanked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from smallfirst.config import RetentionConfig
from smallfirst.ledger import partitions
from smallfirst.ledger.responses_store import ResponsesStore
from smallfirst.ledger.store import LedgerStore

log = logging.getLogger("smallfirst.ledger")
DAY_S = 86400.0
PROMPTS_MARK = "retention.prompts_blanked_before"
"""ledger_meta: every row with ts below this has had its prompt and answer blanked."""
PAUSE_S = 0.05
"""Between background batches: lets the writer's transactions in."""


@dataclass(slots=True)
class Pruned:
    prompts: int = 0
    """Rows whose prompt/answer text was blanked."""
    rows: int = 0
    """Raw rows (requests and hops) deleted."""
    responses: int = 0
    """Stored Responses API conversations deleted (they age like prompt text)."""
    finished: bool = False
    """Nothing is left to prune (False: stopped at `max_batches`)."""


def prune(
    store: LedgerStore,
    policy: RetentionConfig,
    now: float | None = None,
    max_batches: int | None = None,
) -> Pruned:
    """Apply `policy` as of `now`: stored conversations first, then the rows in at most
    `max_batches` batches (None: until done)."""
    now = time.time() if now is None else now
    responses = delete_conversations(store, policy, now)
    done = prune_rows(store, policy, now, max_batches)
    done.responses = responses
    return done


def delete_conversations(store: LedgerStore, policy: RetentionConfig, now: float) -> int:
    """Delete the stored Responses API conversations older than the prompt text's limit.
    One statement whatever their number, so it runs once per pass, not once per batch."""
    if policy.prompts_days is None:
        return 0
    return ResponsesStore(store).delete_before(now - policy.prompts_days * DAY_S)


def prune_rows(
    store: LedgerStore, policy: RetentionConfig, now: float, max_batches: int | None
) -> Pruned:
    """Blank old prompt text, then delete old raw rows, in at most `max_batches` batches."""
    done = Pruned()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        if policy.prompts_days is not None:
            scanned, blanked = blank_prompts(store, now - policy.prompts_days * DAY_S, policy)
            done.prompts += blanked
            if scanned == policy.batch_rows:
                continue
        if policy.rows_days is not None:
            deleted, more = delete_rows(store, now - policy.rows_days * DAY_S, policy.batch_rows)
            done.rows += deleted
            if more:
                continue
        done.finished = True
        break
    return done


def blank_prompts(store: LedgerStore, before: float, policy: RetentionConfig) -> tuple[int, int]:
    """One batch: blank the text of the next rows (by time) older than `before`.
    Returns (rows looked at, rows blanked)."""
    table = store.requests
    with store.engine.begin() as conn:
        start = _mark(conn, store)
        if start is not None and start >= before:
            return 0, 0
        query = select(table.c.id, table.c.ts).where(table.c.ts < before)
        if start is not None:
            query = query.where(table.c.ts >= start)
        rows = conn.execute(query.order_by(table.c.ts).limit(policy.batch_rows)).all()
        has_text = table.c.prompt.is_not(None) | table.c.response.is_not(None)
        blank = update(table).values(prompt=None, response=None).where(has_text)
        if len(rows) < policy.batch_rows:
            ids = [row.id for row in rows]
            blanked = conn.execute(blank.where(table.c.id.in_(ids))).rowcount if ids else 0
            _set_mark(conn, store, before)
            return len(rows), blanked
        last = rows[-1].ts
        if last == start:  # a whole batch at one instant: take that instant at once
            blanked = conn.execute(blank.where(table.c.ts == last)).rowcount
            _set_mark(conn, store, math.nextafter(last, math.inf))
            return len(rows), blanked
        ids = [row.id for row in rows if row.ts < last]  # rows at `last`: the next batch's
        blanked = conn.execute(blank.where(table.c.id.in_(ids))).rowcount
        _set_mark(conn, store, last)
        return len(rows), blanked


def delete_rows(store: LedgerStore, before: float, batch_rows: int) -> tuple[int, bool]:
    """One batch: delete up to `batch_rows` of the oldest raw rows older than `before`.
    On PostgreSQL, whole months older than `before` go first, all in one batch, each dropped
    in one statement however many rows it holds (and the months ahead are created).
    Returns (rows deleted, whether more may be left)."""
    table = store.requests
    oldest = select(table.c.id).where(table.c.ts < before).order_by(table.c.ts).limit(batch_rows)
    with store.engine.begin() as conn:
        if partitions.is_partitioned(conn):
            partitions.ensure_ahead(conn, time.time())
            dropped = partitions.drop_before(conn, before)
            if dropped:
                return dropped, True
        deleted = conn.execute(delete(table).where(table.c.id.in_(oldest))).rowcount
        return deleted, deleted == batch_rows


def _mark(conn: Connection, store: LedgerStore) -> float | None:
    meta = store.meta
    return conn.execute(select(meta.c.value).where(meta.c.name == PROMPTS_MARK)).scalar()


def _set_mark(conn: Connection, store: LedgerStore, value: float) -> None:
    meta = store.meta
    changed = conn.execute(
        update(meta).where(meta.c.name == PROMPTS_MARK).values(value=value)
    ).rowcount
    if not changed:
        conn.execute(meta.insert().values(name=PROMPTS_MARK, value=value))


async def prune_pass(store: LedgerStore, policy: RetentionConfig) -> Pruned:
    """One background pass: batches until nothing is left, one batch per thread hop and a
    pause between batches so the writer's transactions get in."""
    now = time.time()
    total = Pruned(responses=await asyncio.to_thread(delete_conversations, store, policy, now))
    while True:
        step = await asyncio.to_thread(prune_rows, store, policy, now, 1)
        total.prompts += step.prompts
        total.rows += step.rows
        if step.finished:
            total.finished = True
            return total
        await asyncio.sleep(PAUSE_S)


async def keep_pruning(store: LedgerStore, policy: RetentionConfig) -> None:
    """The gateway's background task: a pass every `interval_s`.
    A failing pass (database unavailable) is logged and tried again at the next interval."""
    if policy.prompts_days is None and policy.rows_days is None:
        return
    while True:
        try:
            total = await prune_pass(store, policy)
            if total.prompts or total.rows or total.responses:
                log.info(
                    "ledger retention: blanked %d prompts, deleted %d rows and %d conversations",
                    total.prompts,
                    total.rows,
                    total.responses,
                )
        except Exception as exc:  # the ledger writer reports outages; keep the task alive
            log.warning("ledger retention: pass failed (%s); retrying later", exc)
        await asyncio.sleep(policy.interval_s)
