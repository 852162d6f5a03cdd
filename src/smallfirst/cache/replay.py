"""A labelled stream of messages replayed through the semantic cache, and the threshold (and
ambiguity margin) calibrated on it.

A stream is what a route's traffic looks like: messages in arrival order, each with the answer
that is right for it. Each message looks up the earlier ones; a hit is answered from the cache
and not stored, anything else is stored. The evidence is each lookup the ambiguity check lets
through: the nearest entry's similarity and whether its answer is the message's.

What is stored depends on the threshold (a hit is never stored), and the neighbourhoods the
ambiguity check sees depend on what is stored, so evidence gathered with everything stored
overstates the precision a deployed cache gets (banking77: a threshold calibrated that way at
0.9 measured 0.84 on a stream replayed with hits left out). So the threshold is found by
replaying at it: start from the one the everything-stored evidence gives, replay at it, and
raise it to the lowest cut of that replay's hits whose precision bound meets the target, until
the replay's hits meet it as they are. The threshold only rises, so this ends.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from smallfirst.cache.ambiguity import MARGINS, NEIGHBOURS, Neighbour, ambiguous
from smallfirst.cache.thresholds import Evidence, calibrate
from smallfirst.evaluate.stats import DEFAULT_LEVEL
from smallfirst.routing.thresholds import Calibration

MAX_ROUNDS = 10
"""Replays per margin before giving up (no threshold: the margin is not kept)."""

Stream = tuple[np.ndarray, Sequence[Hashable]]
"""Unit vectors of a stream's messages, in order, and each message's right answer."""


@dataclass(slots=True)
class Replay:
    evidence: Evidence
    """(nearest similarity, right) for each lookup the ambiguity check let through."""
    hits: int
    right: int
    messages: int


def replay(
    vectors: np.ndarray,
    answers: Sequence[Hashable],
    threshold: float | None,
    margin: float | None,
) -> Replay:
    """Each message looks up the earlier stored ones (exact search); a hit (at or above
    `threshold`, unambiguous at `margin`) is not stored. `threshold` None: every message is
    stored and every unambiguous lookup is evidence. `margin` None: no ambiguity check."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    ids = {answer: number for number, answer in enumerate(dict.fromkeys(answers))}
    stored: list[int] = []
    evidence: Evidence = []
    hits = right = 0
    k = 1 if margin is None else NEIGHBOURS
    for i, answer in enumerate(answers):
        vector = vectors[i : i + 1]
        if stored:
            scores, found = index.search(vector, min(k, len(stored)))
            near = [
                Neighbour(str(at), float(s), stored[at])
                for s, at in zip(scores[0], found[0], strict=True)
            ]
            if margin is None or not ambiguous(near, margin):
                best, correct = near[0], near[0].answer == ids[answer]
                evidence.append((best.similarity, correct))
                if threshold is not None and best.similarity >= threshold:
                    hits += 1
                    right += correct
                    continue
        index.add(vector)
        stored.append(ids[answer])
    return Replay(evidence, hits, right, len(answers))


@dataclass(slots=True)
class StreamCalibration:
    calibration: Calibration
    """At the threshold found: kept_n is the replays' hits, n their unambiguous lookups."""
    margin: float | None
    evidence: Evidence
    lookups: int
    """Every lookup of the replays (ambiguous ones too): the hit rate's denominator."""


def calibrate_margin(
    streams: Sequence[Stream], target: float, margin: float | None
) -> StreamCalibration:
    """The lowest threshold at which the streams, replayed at it with this margin, hit with a
    precision whose one-sided 95% Wilson lower bound meets `target`."""
    threshold: float | None = None
    for _ in range(MAX_ROUNDS):
        replays = [replay(vectors, answers, threshold, margin) for vectors, answers in streams]
        evidence = [pair for found in replays for pair in found.evidence]
        lookups = sum(max(found.messages - 1, 0) for found in replays)
        if not evidence:
            break
        kept = evidence if threshold is None else [e for e in evidence if e[0] >= threshold]
        if not kept:
            break
        found = calibrate(kept, target)
        if not found.achievable:
            break
        if threshold is not None and found.kept_n == len(kept):
            share = len(kept) / len(evidence)
            held = replace(found, threshold=threshold, n=len(evidence), kept_share=share)
            return StreamCalibration(held, margin, evidence, lookups)
        threshold = found.threshold
    return StreamCalibration(_off(target, len(evidence)), margin, evidence, lookups)


def calibrate_streams(
    streams: Sequence[Stream],
    target: float,
    margins: Sequence[float | None] = MARGINS,
) -> StreamCalibration:
    """Each margin calibrated (`calibrate_margin`); the one whose threshold hits most on the
    replays is kept (a tie: the earlier, so no check before a check). None reaching the
    target: the first margin's result, not achievable."""
    results = [calibrate_margin(streams, target, margin) for margin in margins]
    reached = [r for r in results if r.calibration.achievable]
    if not reached:
        return results[0]
    return max(reached, key=lambda r: r.calibration.kept_n)


def _off(target: float, n: int) -> Calibration:
    return Calibration(
        threshold=1.0, target_accuracy=target, kept_share=0.0, kept_accuracy=None,
        overall_accuracy=None, n=n, achievable=False, level=DEFAULT_LEVEL,
    )  # fmt: skip
