"""`smallfirst cache calibrate`: a task's semantic threshold from labelled pairs.

A pair is two user turns and whether one's answer is right for the other (`same`). Their
similarity is what a semantic lookup would see; the threshold is the lowest one whose hits
reach the target precision (lower bound), kept with its evidence so audits can extend it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from smallfirst.cache.semantic import static_embedder
from smallfirst.cache.thresholds import Evidence, ThresholdStore, calibrate
from smallfirst.embeddings import Embedder
from smallfirst.routing.templates import Template
from smallfirst.routing.thresholds import Calibration


@dataclass(slots=True)
class Pair:
    a: str
    b: str
    same: bool


def similarities(embedder: Embedder, pairs: list[Pair], template: list[str]) -> np.ndarray:
    pieces = sorted(template, key=len, reverse=True)
    strip = Template(pieces, pieces)
    left = embedder.encode([strip.split(p.a)[1] for p in pairs])
    right = embedder.encode([strip.split(p.b)[1] for p in pairs])
    return np.einsum("ij,ij->i", left, right)


def calibrate_pairs(
    pairs: Iterable[Pair],
    target: float,
    template: list[str] | None = None,
    embedder: Embedder | None = None,
    embedder_path: str | None = None,
) -> tuple[Calibration, Evidence]:
    pairs = list(pairs)
    embedder = embedder or static_embedder(embedder_path)
    scores = similarities(embedder, pairs, template or [])
    evidence = [(float(s), p.same) for s, p in zip(scores, pairs, strict=True)]
    return calibrate(evidence, target), evidence


def save(store: ThresholdStore, task: str, calibration: Calibration, evidence: Evidence) -> bool:
    """Keep the threshold when the target is reachable (else the semantic cache stays off)."""
    if not calibration.achievable:
        return False
    store.save(task, calibration.threshold, evidence)
    return True
