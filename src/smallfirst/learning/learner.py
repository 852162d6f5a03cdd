"""`smallfirst learn`: per task, move to the cheapest policy proven on held-out evidence, and
back to the large model when audits show a drop.

For each task: a promoted policy is first judged on the audits since it was created (the
large model asked beside a cheaper answer); a drop demotes it to large and restarts learning
from then, since the old evidence no longer describes the traffic. Otherwise the candidates
(candidates.py) are estimated, and the cheapest whose lower bound meets `learn.target` is
stored as a new version, once the task has `learn.min_evidence` comparisons. Nothing changes
without proof: a task with too little evidence says how much more it needs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from smallfirst.config import LearnConfig, state_dir
from smallfirst.distill.embed_cache import EmbeddingCache
from smallfirst.distill.extraction_student import ExtractionStudent
from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import InvalidRequestError
from smallfirst.learning.candidates import (
    MIN_AUDIT_RATE,
    Candidate,
    extraction_candidates,
    more_needed,
    rate_estimate,
    small_candidate,
    student_candidates,
)
from smallfirst.learning.cases import Case, build_cases, output_kind
from smallfirst.learning.records import Estimate, Feedback, OutputKind, Policy
from smallfirst.learning.store import LearningStore
from smallfirst.learning.tiers import large_model, small_model
from smallfirst.models.registry import Registry

log = logging.getLogger("smallfirst.learning")

Action = Literal["promoted", "demoted", "kept", "needs_evidence"]
LEASE = "learn.lease_until"
"""ledger_meta: until when a replica's learner holds the pass."""
MIN_LEASE_S = 600.0
"""A pass holds the lease at least this long (it is cut short when the pass ends), so a
slow pass is not joined by another replica's."""
REFRESH_GAIN = 0.05
"""A policy of the same shape is replaced only when it serves this much more traffic below
large (so a fresh student is not a new version on every run)."""
SHADOW_FLOOR = 0.02
"""The shadow rate once the small model is proven below target on a task (its upper bound
is under it): asking it more is spend without hope, but a trickle notices a better model."""
EMBEDDINGS_FILE = "embeddings.sqlite"


@dataclass(slots=True)
class Outcome:
    """What one run decided for one task."""

    task: str
    action: Action
    message: str
    policy: Policy | None
    """The task's policy after this run (None: still cold, served on large)."""
    target: float
    estimate: Estimate | None = None
    """The estimate the decision rests on (the chosen or best candidate's, or the audits')."""
    evidence_n: int = 0
    needed: int | None = None
    """Comparisons still needed (too little evidence, or a bound short of the target)."""

    @property
    def share_below_large(self) -> float:
        """Of the policy now in force, as estimated on held-out requests."""
        return self.policy.share_below_large if self.policy is not None else 0.0


def describe(estimate: Estimate, target: float) -> str:
    return (
        f"{estimate.agreement:.3f} [{estimate.lower:.3f}, {estimate.upper:.3f}] "
        f"N={estimate.n} vs target {target:g}"
    )


def artifacts_dir(store: LearningStore, config: LearnConfig) -> Path:
    """`learn.artifacts_dir`, else `learned/` beside a SQLite ledger, else the state dir."""
    if config.artifacts_dir:
        return Path(config.artifacts_dir).expanduser()
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / "learned"
    return state_dir() / "learned"


def learn(
    registry: Registry,
    store: LearningStore,
    config: LearnConfig,
    *,
    tasks: list[str] | None = None,
    now: float | None = None,
    embedder: Embedder | None = None,
) -> list[Outcome]:
    """One pass over every task with evidence (or `tasks`); stores what changed."""
    run = _Run(registry, store, config, time.time() if now is None else now, embedder)
    names = tasks if tasks is not None else sorted(set(store.evidence_counts()) | set(run.current))
    try:
        return [run.task(name) for name in names]
    finally:
        run.close()


async def keep_learning(registry: Registry, store: LearningStore, config: LearnConfig) -> None:
    """`learn: {auto: true}`: a pass every `interval_s`, in a thread, over the tasks whose
    evidence changed since the last pass (a student is retrained only on news); a failure
    is logged and the next pass tries those tasks again. Replicas share the work through a
    lease in the ledger (`LEASE`): a pass runs on the replica that takes it, the others skip
    theirs, so one learner writes each policy version."""
    learnt: dict[str, int] = {}
    while True:
        await asyncio.sleep(config.interval_s)
        now = time.time()
        held = now + max(config.interval_s, MIN_LEASE_S)
        if not await asyncio.to_thread(store.take_lease, LEASE, held, now):
            continue  # another replica is learning, or learnt less than an interval ago
        try:
            counts = await asyncio.to_thread(store.evidence_counts)
            news = sorted(task for task, n in counts.items() if learnt.get(task) != n)
            outcomes = await asyncio.to_thread(learn, registry, store, config, tasks=news)
        except Exception:
            log.exception("learning: the learner failed; trying again in %ss", config.interval_s)
            continue
        finally:  # the next pass, anywhere, after about an interval
            await asyncio.to_thread(store.set_lease, LEASE, time.time() + config.interval_s / 2)
        learnt.update({task: counts[task] for task in news})
        for outcome in outcomes:
            if outcome.action in ("promoted", "demoted"):
                log.info("learning: %s", outcome.message)


def rollback(store: LearningStore, task: str, version: int, now: float | None = None) -> Policy:
    """A new version copying `version` (history is never rewritten)."""
    found = next((p for p in store.history(task) if p.version == version), None)
    if found is None:
        raise InvalidRequestError(f"task {task!r} has no policy version {version}")
    copy = replace(
        found,
        reason=f"rolled back to v{version}: {found.reason}",
        created_at=time.time() if now is None else now,
        rolled_back_from=version,
        artifacts=dict(found.artifacts),
        rungs=list(found.rungs),
    )
    return store.save_policy(copy)


class _Run:
    def __init__(
        self,
        registry: Registry,
        store: LearningStore,
        config: LearnConfig,
        now: float,
        embedder: Embedder | None,
    ) -> None:
        self.store, self.now = store, now
        self.settings = self.config = config
        """`learn:` as configured, and as it applies to the task being learnt (`task`)."""
        self.current = store.current_policies()
        self.feedback: list[Feedback] = store.feedback()
        self.large = large_model(registry, config)
        self.large_tier = registry.get(self.large).tier
        self.small = small_model(registry, config)
        self._embedder = embedder
        self._cache: EmbeddingCache | None = None
        """The vector cache this run opened (and closes)."""

    @property
    def embedder(self) -> Embedder:
        """MiniLM, through a vector cache in the artifacts folder: each pass embeds the same
        evidence again, and encoding is most of a pass's time."""
        if self._embedder is None:
            path = artifacts_dir(self.store, self.settings) / EMBEDDINGS_FILE
            self._embedder = self._cache = EmbeddingCache(get_embedder("minilm"), path)
        return self._embedder

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def task(self, task: str) -> Outcome:
        self.config = self.settings.for_task(task)
        policy = self.current.get(task)
        evidence = self.store.evidence(task, since=policy.evidence_since if policy else None)
        kind = output_kind(evidence) or (policy.output_kind if policy else None)
        cases = build_cases(evidence, self.feedback, kind)
        if policy is not None and policy.serve != "large":
            demoted = self._judge_audits(task, policy, cases, kind)
            if demoted is not None:
                return demoted
        return self._consider(task, policy, cases, kind)

    # demotion -----------------------------------------------------------------------

    def _judge_audits(
        self, task: str, policy: Policy, cases: list[Case], kind: OutputKind | None
    ) -> Outcome | None:
        """Demote when the audits since the policy began put it below target: its lower
        bound is under the target and either its upper bound is too (proven worse) or, over
        `min_evidence` audits, its point estimate is (a slow drop). A lower bound short of
        the target on a handful of audits alone is noise, and would flap."""
        config = self.config
        audits = [
            c for c in cases if c.audited and c.agree is not None and c.ts >= policy.created_at
        ]
        if not audits:
            return None
        answered = rate_estimate(sum(1 for c in audits if c.agree), len(audits), config.confidence)
        below = self._share_below_large(task, policy)
        estimate = Estimate(
            n=answered.n,
            agreement=1 - below * (1 - answered.agreement),
            lower=1 - below * (1 - answered.lower),
            upper=1 - below * (1 - answered.upper),
        )
        target = config.target
        slow_drop = answered.n >= config.min_evidence and estimate.agreement < target
        if not (estimate.lower < target and (estimate.upper < target or slow_drop)):
            return None
        reason = (
            f"demoted from v{policy.version} ({policy.serve}): audits since then agree "
            f"{describe(estimate, target)}, below target; back on {self.large}"
        )
        saved = self.store.save_policy(
            Policy(
                task=task,
                version=0,
                serve="large",
                rungs=[self.large],
                reason=reason,
                target=target,
                estimate=estimate,
                output_kind=kind,
                shadow_rate=config.shadow_rate,
                evidence_n=len(audits),
                created_at=self.now,
                evidence_since=self.now,
            )
        )
        message = f"{task} v{saved.version}: {reason}"
        return Outcome(task, "demoted", message, saved, target, estimate, len(audits))

    def _share_below_large(self, task: str, policy: Policy) -> float:
        """The share of the task's traffic served below large since the policy began (from
        the ledger), else the share its held-out estimate promised."""
        served = self.store.tiers_served(task, policy.created_at)
        total = sum(served.values())
        if total:
            return sum(n for tier, n in served.items() if tier != self.large_tier) / total
        return policy.share_below_large or 1.0

    # promotion ----------------------------------------------------------------------

    def _consider(
        self, task: str, policy: Policy | None, cases: list[Case], kind: OutputKind | None
    ) -> Outcome:
        config, target = self.config, self.config.target
        evidence_n = sum(1 for c in cases if c.trusted and (c.reference or c.agree is not None))
        where = _serving(policy, self.large)
        if evidence_n < config.min_evidence:
            missing = config.min_evidence - evidence_n
            message = (
                f"{task}: {evidence_n} of the {config.min_evidence} comparisons needed "
                f"({missing} more); {where}"
            )
            return Outcome(
                task,
                "needs_evidence",
                message,
                policy,
                target,
                evidence_n=evidence_n,
                needed=missing,
            )
        candidates, notes = self._candidates(cases, kind)
        shadow_rate = self._shadow_rate(candidates)
        passing = [c for c in candidates if c.estimate.lower >= target and c.share_below_large]
        if not passing:
            outcome = self._short(task, policy, candidates, notes, evidence_n, where)
            return self._shadow_less(outcome, kind, shadow_rate, candidates)
        chosen = max(passing, key=lambda c: c.cheapness)
        if policy is not None and _same_or_better(policy, chosen):
            message = f"{task}: keeps v{policy.version} ({policy.reason})"
            return Outcome(task, "kept", message, policy, target, policy.estimate, evidence_n)
        saved = self._promote(task, chosen, kind, evidence_n, shadow_rate)
        message = f"{task} v{saved.version}: {saved.reason}"
        return Outcome(task, "promoted", message, saved, target, chosen.estimate, evidence_n)

    def _shadow_rate(self, candidates: list[Candidate]) -> float:
        """`learn.shadow_rate`, or `SHADOW_FLOOR` once the small model is proven worse."""
        small = next((c for c in candidates if c.serve == "small"), None)
        hopeless = (
            small is not None
            and small.estimate.n >= self.config.min_evidence
            and small.estimate.upper < self.config.target
        )
        return min(self.config.shadow_rate, SHADOW_FLOOR) if hopeless else self.config.shadow_rate

    def _shadow_less(
        self,
        outcome: Outcome,
        kind: OutputKind | None,
        shadow_rate: float,
        candidates: list[Candidate],
    ) -> Outcome:
        """A task staying on large whose small model is proven worse: store a version that
        shadows at `SHADOW_FLOOR` (once; a cheaper policy found later replaces it)."""
        policy = outcome.policy
        current = policy.shadow_rate if policy is not None else self.config.shadow_rate
        if shadow_rate >= current or (policy is not None and policy.serve != "large"):
            return outcome
        small = next(c for c in candidates if c.serve == "small")
        reason = (
            f"{self.small} is below target ({describe(small.estimate, self.config.target)}); "
            f"stays on {self.large}, shadowing {shadow_rate:.0%} of requests"
        )
        saved = self.store.save_policy(
            Policy(
                task=outcome.task,
                version=0,
                serve="large",
                rungs=[self.large],
                reason=reason,
                target=self.config.target,
                estimate=small.estimate,
                output_kind=kind,
                shadow_rate=shadow_rate,
                evidence_n=outcome.evidence_n,
                created_at=self.now,
                evidence_since=policy.evidence_since if policy is not None else None,
            )
        )
        message = f"{outcome.message}; v{saved.version}: {reason}"
        return replace(outcome, message=message, policy=saved)

    def _candidates(
        self, cases: list[Case], kind: OutputKind | None
    ) -> tuple[list[Candidate], list[str]]:
        notes: list[str] = []
        candidates: list[Candidate] = []
        if kind == "label":
            students, why = student_candidates(
                cases, self.config, self.embedder, self.large, self.small
            )
            candidates.extend(students)
            if why:
                notes.append(why)
        if kind == "json":
            students, why = extraction_candidates(cases, self.config, self.large, self.small)
            candidates.extend(students)
            if why:
                notes.append(why)
        if self.small is not None:
            small = small_candidate(cases, self.small, self.config.confidence)
            if small is not None:
                candidates.append(small)
            elif kind == "text":
                notes.append("free text is compared by a judge model, and no verdicts exist yet")
        return candidates, notes

    def _short(
        self,
        task: str,
        policy: Policy | None,
        candidates: list[Candidate],
        notes: list[str],
        evidence_n: int,
        where: str,
    ) -> Outcome:
        """No candidate proven: say which came closest and what it would take."""
        target, level = self.config.target, self.config.confidence
        if any(not c.share_below_large for c in candidates):
            notes.append("the student is not sure of any held-out request yet")
        candidates = [c for c in candidates if c.share_below_large]
        if not candidates:
            why = "; ".join(notes) or "no cheaper candidate has evidence yet"
            return Outcome(
                task, "kept", f"{task}: {why}; {where}", policy, target, None, evidence_n
            )
        best = max(candidates, key=lambda c: c.estimate.lower)
        needed = more_needed(best.estimate, target, level)
        tail = (
            f"about {needed} more comparisons at this agreement would prove it"
            if needed is not None
            else "its agreement is not above the target"
        )
        message = (
            f"{task}: best candidate {best.name} {describe(best.estimate, target)}; {tail}; {where}"
        )
        return Outcome(task, "kept", message, policy, target, best.estimate, evidence_n, needed)

    def _promote(
        self,
        task: str,
        chosen: Candidate,
        kind: OutputKind | None,
        evidence_n: int,
        shadow_rate: float,
    ) -> Policy:
        config = self.config
        artifacts: dict[str, str] = {}
        if chosen.student is not None:
            folder = artifacts_dir(self.store, config)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{_slug(task)}-{int(self.now)}-{secrets.token_hex(3)}.joblib"
            chosen.student.save(path)
            extraction = isinstance(chosen.student, ExtractionStudent)
            artifacts["extraction_student" if extraction else "student"] = str(path)
        reason = (
            f"{chosen.name} serves {chosen.share_below_large:.0%} below {self.large}: agreement "
            f"{describe(chosen.estimate, config.target)} on held-out requests"
        )
        return self.store.save_policy(
            Policy(
                task=task,
                version=0,
                serve=chosen.serve,
                rungs=chosen.rungs,
                reason=reason,
                target=config.target,
                estimate=chosen.estimate,
                output_kind=kind,
                shadow_rate=shadow_rate,  # what a student defers is still shadowed
                audit_rate=max(config.audit_rate, MIN_AUDIT_RATE),
                artifacts=artifacts,
                evidence_n=evidence_n,
                created_at=self.now,
                share_below_large=chosen.share_below_large,
            )
        )


def _serving(policy: Policy | None, large: str) -> str:
    if policy is None:
        return f"stays on {large} (cold start)"
    return f"stays on v{policy.version} ({policy.serve})"


def _same_or_better(policy: Policy, chosen: Candidate) -> bool:
    """Does the current policy already serve as cheaply? The same shape must gain
    `REFRESH_GAIN` to be replaced (a retrained student is not a new version every run)."""
    if policy.serve == "large":
        return False
    share = policy.share_below_large
    current = (share, share if policy.serve == "student" else 0.0)
    margin = REFRESH_GAIN if (policy.serve, policy.rungs) == (chosen.serve, chosen.rungs) else 0.0
    below, on_student = chosen.cheapness
    if below != current[0]:
        return below <= current[0] + margin
    return on_student <= current[1] + margin


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", task)[:80] or "task"
