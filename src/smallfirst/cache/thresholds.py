"""Each task's semantic threshold, set on evidence and kept in the ledger database.

Evidence is (similarity, right) pairs: labelled pairs given to `smallfirst cache calibrate`,
and audits of sampled hits. The threshold is the lowest similarity whose hits' precision has
a one-sided 95% Wilson lower bound at the target (`routing.thresholds.calibrate_threshold`);
audits only ever raise it. A task without evidence has no threshold: its semantic cache is
off (and says so in the log).

A threshold calibrated on a labelled stream comes with the ambiguity margin it was calibrated
with (cache/ambiguity.py): its evidence is the lookups that margin left unambiguous, and audits
(of unambiguous hits) extend it under the same margin. A row without one (calibrated on pairs,
or stored before margins existed) has no ambiguity check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import orjson
from sqlalchemy import Column, Engine, Float, MetaData, String, Table, Text, delete, select

from smallfirst.routing.thresholds import Calibration, calibrate_threshold

THRESHOLDS = Table(
    "response_cache_thresholds",
    MetaData(),
    Column("task", String(200), primary_key=True),
    Column("threshold", Float, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("margin", Float),
)
Evidence = list[tuple[float, bool]]


@dataclass(slots=True)
class TaskThreshold:
    threshold: float
    evidence: Evidence
    margin: float | None = None
    """The ambiguity margin the threshold was calibrated with; None: no ambiguity check."""


def calibrate(evidence: Evidence, target: float) -> Calibration:
    scores = np.array([s for s, _ in evidence], dtype=float)
    right = np.array([r for _, r in evidence], dtype=bool)
    return calibrate_threshold(scores, right, target)


class ThresholdStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, task: str) -> TaskThreshold | None:
        query = select(THRESHOLDS).where(THRESHOLDS.c.task == task)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        evidence = [(float(s), bool(r)) for s, r in orjson.loads(row["evidence"])]
        margin = None if row["margin"] is None else float(row["margin"])
        return TaskThreshold(float(row["threshold"]), evidence, margin)

    def save(
        self, task: str, threshold: float, evidence: Evidence, margin: float | None = None
    ) -> None:
        row = {"task": task, "threshold": threshold, "updated_at": time.time(), "margin": margin}
        row["evidence"] = orjson.dumps([[s, r] for s, r in evidence]).decode()
        with self.engine.begin() as conn:
            conn.execute(delete(THRESHOLDS).where(THRESHOLDS.c.task == task))
            conn.execute(THRESHOLDS.insert().values(row))

    def add_audit(self, task: str, similarity: float, right: bool, target: float) -> float:
        """Record one audited hit; the threshold rises when the evidence now asks for it."""
        current = self.load(task)
        evidence = [*(current.evidence if current else []), (similarity, right)]
        needed = calibrate(evidence, target).threshold
        threshold = max(needed, current.threshold) if current else needed
        self.save(task, threshold, evidence, current.margin if current else None)
        return threshold
