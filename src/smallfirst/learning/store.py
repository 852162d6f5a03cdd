"""The learning tables in the ledger's database (migration m010): evidence, feedback and
policy versions. One database for every replica, so evidence gathered on one and a policy
learned on another reach them all."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, MetaData, Table, and_, func, select
from sqlalchemy.exc import IntegrityError

from smallfirst.learning.records import Evidence, EvidenceSource, Feedback, Policy

TABLES = ("learn_evidence", "learn_feedback", "learn_policies", "requests", "ledger_meta")
DAY_S = 86_400.0
_REFLECTED: weakref.WeakKeyDictionary[Engine, tuple[Table, ...]] = weakref.WeakKeyDictionary()
"""The tables per engine, reflected once: the dashboard opens a store on every request, and
reflecting them (a partitioned `requests` on PostgreSQL) took ~45 ms each time at 10M rows.
The schema only changes through migrations, which run before an engine is handed out."""


class LearningStore:
    def __init__(self, engine: Engine) -> None:
        """`engine`: the ledger's (`LedgerStore.engine`), already migrated."""
        self.engine = engine
        tables = _REFLECTED.get(engine)
        if tables is None:
            metadata = MetaData()
            metadata.reflect(engine, only=list(TABLES))
            _REFLECTED[engine] = tables = tuple(metadata.tables[name] for name in TABLES)
        self.evidence_table, self.feedback_table, self.policies, self.requests, self.meta = tables

    # evidence -------------------------------------------------------------------------

    def add_evidence(self, items: Iterable[Evidence]) -> int:
        rows = [item.as_row() for item in items]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.evidence_table.insert(), rows)
        return len(rows)

    def evidence(
        self,
        task: str | None = None,
        *,
        since: float | None = None,
        sources: Sequence[EvidenceSource] | None = None,
    ) -> list[Evidence]:
        """Oldest first; optionally one task, from `since`, of some sources."""
        table = self.evidence_table
        query = select(table).order_by(table.c.id)
        if task is not None:
            query = query.where(table.c.task == task)
        if since is not None:
            query = query.where(table.c.ts >= since)
        if sources is not None:
            query = query.where(table.c.source.in_(list(sources)))
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        return [Evidence(**{k: v for k, v in row.items() if k != "id"}) for row in rows]

    def evidence_counts(self) -> dict[str, int]:
        table = self.evidence_table
        query = select(table.c.task, func.count()).group_by(table.c.task)
        with self.engine.connect() as conn:
            return {task: int(n) for task, n in conn.execute(query)}

    def output_kinds(self, task: str) -> dict[str, int]:
        """How many of a task's evidence rows say each output kind (feedback, which cannot
        tell from the request, takes the commonest)."""
        table = self.evidence_table
        query = (
            select(table.c.output_kind, func.count())
            .where(table.c.task == task)
            .group_by(table.c.output_kind)
        )
        with self.engine.connect() as conn:
            return {str(kind): int(n) for kind, n in conn.execute(query)}

    def spent_today(self, now: float | None = None) -> float:
        """Shadow, audit and judge spend since 00:00 UTC, over every replica."""
        now = time.time() if now is None else now
        day = now - now % DAY_S
        table = self.evidence_table
        query = select(func.coalesce(func.sum(table.c.cost_usd), 0.0)).where(table.c.ts >= day)
        with self.engine.connect() as conn:
            return float(conn.execute(query).scalar_one())

    # the learner's lease ----------------------------------------------------------------

    def take_lease(self, name: str, until: float, now: float | None = None) -> bool:
        """Hold `name` until `until` if no replica holds it now: one atomic UPDATE of an
        expired lease (or the INSERT of a first one), so of replicas trying at once exactly
        one wins. The holder is not recorded: a lease is held for a span, then lapses."""
        now = time.time() if now is None else now
        meta = self.meta
        expired = and_(meta.c.name == name, meta.c.value <= now)
        try:
            with self.engine.begin() as conn:
                if conn.execute(meta.update().where(expired).values(value=until)).rowcount:
                    return True
                conn.execute(meta.insert().values(name=name, value=until))
                return True
        except IntegrityError:  # held by another replica (the row exists, unexpired)
            return False

    def set_lease(self, name: str, until: float) -> None:
        """Move the holder's lease's end (sooner, when its work is done)."""
        with self.engine.begin() as conn:
            conn.execute(self.meta.update().where(self.meta.c.name == name).values(value=until))

    # feedback -------------------------------------------------------------------------

    def add_feedback(self, item: Feedback) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.feedback_table.insert(), [item.as_row()])

    def feedback(self, since: float | None = None) -> list[Feedback]:
        table = self.feedback_table
        query = select(table).order_by(table.c.id)
        if since is not None:
            query = query.where(table.c.ts >= since)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        return [Feedback(**{k: v for k, v in row.items() if k != "id"}) for row in rows]

    def request_row(self, request_id: str) -> dict[str, Any] | None:
        """The ledger's request row for `request_id` (feedback checks its key and task)."""
        table = self.requests
        query = select(table).where(
            and_(table.c.request_id == request_id, table.c.kind == "request")
        )
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return None if row is None else dict(row._mapping)

    def tiers_served(self, task: str, since: float) -> dict[str, int]:
        """How many of a task's answered requests each tier served since `since` (the
        share a promoted policy really serves below large, for its audits)."""
        table = self.requests
        query = (
            select(table.c.tier, func.count())
            .where(
                and_(
                    table.c.kind == "request",
                    table.c.task == task,
                    table.c.ts >= since,
                    table.c.status == 200,
                )
            )
            .group_by(table.c.tier)
        )
        with self.engine.connect() as conn:
            return {str(tier): int(n) for tier, n in conn.execute(query)}

    # policies -------------------------------------------------------------------------

    def save_policy(self, policy: Policy) -> Policy:
        """Store `policy` as the task's next version (its `version` is set here)."""
        table = self.policies
        with self.engine.begin() as conn:
            latest = conn.execute(
                select(func.max(table.c.version)).where(table.c.task == policy.task)
            ).scalar_one()
            policy.version = int(latest or 0) + 1
            conn.execute(
                table.insert(),
                [
                    {
                        "task": policy.task,
                        "version": policy.version,
                        "created_at": policy.created_at,
                        "policy": orjson.dumps(policy.as_json()).decode(),
                    }
                ],
            )
        return policy

    def current_policies(self) -> dict[str, Policy]:
        """Each task's latest version (a rollback is a new version copying an old one)."""
        table = self.policies
        latest = (
            select(table.c.task, func.max(table.c.version).label("version"))
            .group_by(table.c.task)
            .subquery()
        )
        query = select(table.c.policy).join(
            latest, and_(table.c.task == latest.c.task, table.c.version == latest.c.version)
        )
        with self.engine.connect() as conn:
            found = [Policy.from_json(orjson.loads(text)) for text in conn.execute(query).scalars()]
        return {policy.task: policy for policy in found}

    def history(self, task: str) -> list[Policy]:
        table = self.policies
        query = select(table.c.policy).where(table.c.task == task).order_by(table.c.version)
        with self.engine.connect() as conn:
            return [Policy.from_json(orjson.loads(text)) for text in conn.execute(query).scalars()]
