"""Per task, from the ledger: volume, spend, share per tier, evidence and the policy in force.

Shown by `smallfirst tasks` and in `smallfirst report`. Requests are read from the ledger's
task rollups (`ledger/task_rollups.py`, m011), so the cost follows the window and the number of
groups, not the traffic, and it outlives the raw rows `ledger.retention.rows_days` deletes.
Savings are the baseline model's cost for the same tokens less what was spent, shadow,
audit and judge calls included, so a task on its cold start shows what learning costs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, distinct, func, select

from smallfirst.config import LearnConfig
from smallfirst.learning.records import Estimate, Policy
from smallfirst.learning.store import LearningStore
from smallfirst.learning.tier_series import TierSeries, tier_series
from smallfirst.ledger import rollup_read

MONTH_S = 30 * 86_400.0
MIN_PROJECTION_S = 3_600.0
"""A monthly projection needs at least this much traffic history (less is noise)."""


@dataclass(slots=True)
class TaskSummary:
    task: str
    requests: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    """Spend on request rows (what the clients were charged), hops not counted twice."""
    baseline_cost_usd: float = 0.0
    learning_cost_usd: float = 0.0
    """Shadow, audit and judge calls gathering the task's evidence."""
    tiers: dict[str, float] = field(default_factory=dict)
    """Share of the task's answered requests per tier."""
    series: TierSeries | None = None
    """The same share per time bucket of the window (`tier_series.py`)."""
    evidence: int = 0
    """Requests with evidence about them (all time: what the learner has to go on)."""
    first_ts: float | None = None
    policy: dict[str, Any] | None = None
    """The current policy version (`Policy.as_json()`), None while the task is cold."""
    needed: int | None = None
    """Comparisons still needed before a cheaper policy is considered (None: enough)."""
    saved_usd: float = 0.0
    saved_per_month_usd: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def task_summaries(
    engine: Engine,
    config: LearnConfig | None,
    since: float | None = None,
    until: float | None = None,
    *,
    key_id: str | None = None,
    now: float | None = None,
) -> list[TaskSummary]:
    """Every task with request rows in [since, until), busiest first. `config`: the
    gateway's `learn:` (None: the defaults, for how much evidence a task needs). With
    `key_id`, one key's requests (the dashboard of a key): the learning spend is the
    gateway's, not the key's, so it is left out of its savings."""
    config = config or LearnConfig()
    now = time.time() if now is None else now
    store = LearningStore(engine)
    found = _requests(store, since, until, key_id)
    evidence = _evidence(store, None, None)
    windowed = since is not None or until is not None
    spent = _evidence(store, since, until) if windowed else evidence
    policies = store.current_policies()
    end = now if until is None else min(now, until)
    first = min((s.first_ts for s in found.values() if s.first_ts is not None), default=None)
    start = since if since is not None else first
    series = {} if start is None else tier_series(engine, start, until, now=now, key_id=key_id)
    for task, summary in found.items():
        summary.evidence = evidence.get(task, (0, 0.0))[0]
        if key_id is None:
            summary.learning_cost_usd = spent.get(task, (0, 0.0))[1]
        summary.series = series.get(task)
        policy = policies.get(task)
        summary.policy = policy.as_json() if policy is not None else None
        missing = config.for_task(task).min_evidence - summary.evidence
        summary.needed = missing if missing > 0 and _cold_or_large(policy) else None
        summary.saved_usd = summary.baseline_cost_usd - summary.cost_usd
        summary.saved_usd -= summary.learning_cost_usd
        start = since if since is not None else summary.first_ts
        if start is not None and end - start >= MIN_PROJECTION_S:
            summary.saved_per_month_usd = summary.saved_usd * MONTH_S / (end - start)
    return sorted(found.values(), key=lambda s: (-s.requests, s.task))


@dataclass(slots=True)
class BudgetToday:
    """The learning budget of the current UTC day, over every replica."""

    spent_usd: float
    budget_usd: float

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.budget_usd

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "exhausted": self.exhausted}

    def text(self) -> str:
        head = f"learning budget today: ${self.spent_usd:.4f} of ${self.budget_usd:g}"
        if self.exhausted:
            return head + " (spent: no shadow, audit or judge calls until 00:00 UTC)"
        return head


def budget_today(engine: Engine, config: LearnConfig, now: float | None = None) -> BudgetToday:
    return BudgetToday(LearningStore(engine).spent_today(now), config.budget_usd_per_day)


def _cold_or_large(policy: Policy | None) -> bool:
    return policy is None or policy.serve == "large"


def _requests(
    store: LearningStore, since: float | None, until: float | None, key_id: str | None
) -> dict[str, TaskSummary]:
    with store.engine.connect() as conn:
        source = rollup_read.TASKS
        groups = rollup_read.read(
            conn, since, until, ("task", "tier"), key_id=key_id, source=source
        )
        first = rollup_read.first_hours(conn, "task", key_id=key_id, source=source)
    found: dict[str, TaskSummary] = {}
    answered: dict[str, dict[str, int]] = {}
    for (task, tier, status_class), totals in groups.items():
        if task is None or not totals.requests:
            continue
        summary = found.setdefault(task, TaskSummary(task, first_ts=first.get(task)))
        summary.requests += totals.requests
        summary.errors += totals.requests if status_class >= 4 else 0
        summary.cost_usd += totals.cost_usd
        summary.baseline_cost_usd += totals.baseline_cost_usd
        if tier is not None:
            per_tier = answered.setdefault(task, {})
            per_tier[tier] = per_tier.get(tier, 0) + totals.requests
    for task, tiers in answered.items():
        total = sum(tiers.values())
        found[task].tiers = {t: n / total for t, n in sorted(tiers.items(), key=lambda i: -i[1])}
    return found


def _evidence(
    store: LearningStore, since: float | None, until: float | None
) -> dict[str, tuple[int, float]]:
    table = store.evidence_table
    requests = func.count(distinct(table.c.request_id))
    spent = func.coalesce(func.sum(table.c.cost_usd), 0.0)
    query = (
        select(table.c.task, requests, spent)
        .where(*_window(table.c.ts, since, until))
        .group_by(table.c.task)
    )
    with store.engine.connect() as conn:
        return {task: (int(n), float(cost)) for task, n, cost in conn.execute(query)}


def _window(ts: ColumnElement[float], since: float | None, until: float | None) -> list[Any]:
    bounds = [ts >= since] if since is not None else []
    return bounds + ([ts < until] if until is not None else [])


def policy_text(summary: TaskSummary, config: LearnConfig | None = None) -> str:
    """The policy in words: `v3 student · 0.971 [0.952, 0.984] vs 0.95`, or what is missing."""
    target = (config or LearnConfig()).for_task(summary.task).target
    policy = summary.policy
    parts = []
    if policy is None:
        parts.append("large (cold start)")
    else:
        parts.append(f"v{policy['version']} {policy['serve']}")
        estimate = policy.get("estimate")
        if estimate:
            parts.append(estimate_text(Estimate(**estimate), policy.get("target", target)))
    if summary.needed:
        parts.append(f"needs {summary.needed} more comparisons")
    return " · ".join(parts)


def estimate_text(estimate: Estimate, target: float) -> str:
    return (
        f"{estimate.agreement:.3f} [{estimate.lower:.3f}, {estimate.upper:.3f}] "
        f"vs {target:g} (N={estimate.n})"
    )
