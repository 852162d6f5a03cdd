"""`smallfirst cache calibrate`: a task's semantic threshold from labelled data.

Two kinds of data. A pair is two user turns and whether one's answer is right for the other
(`same`); their similarity is what a semantic lookup would see, and the threshold is the lowest
one whose hits reach the target precision (lower bound). A labelled stream is messages in the
order traffic brings them, each with its right answer; it is replayed through the cache
(cache/replay.py), which also chooses the ambiguity margin (cache/ambiguity.py). Either way the
threshold is kept with its evidence so audits can extend it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from smallfirst.cache.ambiguity import MARGINS, normalised
from smallfirst.cache.replay import StreamCalibration, calibrate_streams
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


@dataclass(slots=True)
class Message:
    """One message of a labelled stream and the answer that is right for it."""

    text: str
    answer: str


def _stripper(template: list[str]) -> Template:
    pieces = sorted(template, key=len, reverse=True)
    return Template(pieces, pieces)


def similarities(embedder: Embedder, pairs: list[Pair], template: list[str]) -> np.ndarray:
    strip = _stripper(template)
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


def calibrate_messages(
    messages: Sequence[Message],
    target: float,
    template: list[str] | None = None,
    embedder: Embedder | None = None,
    embedder_path: str | None = None,
    margins: Sequence[float | None] = MARGINS,
) -> StreamCalibration:
    """The stream replayed with each margin; answers compared as closed outputs are."""
    embedder = embedder or static_embedder(embedder_path)
    strip = _stripper(template or [])
    vectors = embedder.encode([strip.split(m.text)[1] for m in messages])
    answers = [normalised(m.answer) for m in messages]
    return calibrate_streams([(vectors, answers)], target, margins)


def save(
    store: ThresholdStore,
    task: str,
    calibration: Calibration,
    evidence: Evidence,
    margin: float | None = None,
) -> bool:
    """Keep the threshold when the target is reachable (else the semantic cache stays off)."""
    if not calibration.achievable:
        return False
    store.save(task, calibration.threshold, evidence, margin)
    return True
