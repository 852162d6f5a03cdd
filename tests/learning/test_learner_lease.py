"""Replicas with `learn.auto` share one learner: a lease in the ledger lets one pass run at a
time, and another replica takes over once it lapses."""

from __future__ import annotations

import asyncio
import itertools
import time

from smallfirst.learning import learner
from smallfirst.learning.learner import LEASE, keep_learning

from .learn_helpers import learn_config, open_store, registry


def test_one_replica_holds_the_lease_until_it_lapses(tmp_path) -> None:
    first, second = open_store(tmp_path), open_store(tmp_path)  # two replicas, one ledger
    now = 1_000.0
    assert first.take_lease(LEASE, now + 10, now)
    assert not second.take_lease(LEASE, now + 10, now)
    assert not first.take_lease(LEASE, now + 10, now + 5)  # not even its holder, early
    assert second.take_lease(LEASE, now + 30, now + 10)  # lapsed: the other takes it
    second.set_lease(LEASE, now + 12)  # done early
    assert first.take_lease(LEASE, now + 40, now + 12)


async def test_two_replicas_never_learn_at_once(tmp_path, monkeypatch) -> None:
    passes: list[tuple[str, float, float]] = []

    def slow_pass(registry, store, config, tasks=None):
        start = time.monotonic()
        time.sleep(0.05)
        passes.append((store.name, start, time.monotonic()))
        return []

    monkeypatch.setattr(learner, "learn", slow_pass)
    monkeypatch.setattr(learner, "MIN_LEASE_S", 1.0)
    config = learn_config(interval_s=0.01)
    stores = [open_store(tmp_path), open_store(tmp_path)]
    for name, store in zip("ab", stores, strict=True):
        store.name = name  # type: ignore[attr-defined]
    replicas = [asyncio.create_task(keep_learning(registry(), s, config)) for s in stores]
    try:
        await asyncio.sleep(1.5)
    finally:
        for replica in replicas:
            replica.cancel()
    assert len(passes) >= 5
    ordered = sorted(passes, key=lambda p: p[1])
    for (_, _, end), (_, start, _) in itertools.pairwise(ordered):
        assert start >= end  # never two passes at once
