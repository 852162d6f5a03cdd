"""The semantic cache's index: exact while small, IVF once large, and correct either way: the
nearest live entry with its true similarity, expired, replaced, evicted and discarded entries
never returned, and rebuilds that keep what changed while they trained."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from smallfirst.cache import vector_index
from smallfirst.cache.vector_index import VectorIndex

DIM = 32
SMALL = 200
"""`flat_up_to` in these tests: IVF from 200 entries (the gateway's is 8,192)."""


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 topics, like embedded questions (uniform noise has no
    neighbourhoods for an IVF index to find)."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(40, DIM))
    return unit(topics[rng.integers(0, 40, count)] + 0.35 * rng.normal(size=(count, DIM)))


def near(vectors: np.ndarray, seed: int = 1) -> np.ndarray:
    """Paraphrases: each vector nudged (cosine ~0.99 to its original)."""
    return unit(vectors + 0.02 * np.random.default_rng(seed).normal(size=vectors.shape))


def filled(vectors: np.ndarray, **options) -> VectorIndex:
    index = VectorIndex(DIM, flat_up_to=SMALL)
    for start in range(0, len(vectors), 100):  # grows, trains and retrains like a gateway's
        keys = [f"k{i}" for i in range(start, min(start + 100, len(vectors)))]
        index.add(vectors[start : start + 100], keys, **options)
        index.wait()
    return index


def search(
    index: VectorIndex, query: np.ndarray, now: float | None = None
) -> tuple[str, float] | None:
    """The nearest live entry's key and similarity (None: none found)."""
    found = index.neighbours(query, 1, now)
    return None if not found else (found[0].key, found[0].similarity)


def exact_best(vectors: np.ndarray, live: list[int], query: np.ndarray) -> tuple[str, float]:
    scores = vectors[live] @ query
    return f"k{live[int(np.argmax(scores))]}", float(scores.max())


def test_an_approximate_lookup_finds_the_true_nearest_of_a_paraphrase() -> None:
    vectors = clustered(3000)
    index = filled(vectors)
    assert index.kind == "ivf" and index.live == 3000
    queries = near(vectors[::10])
    found = [search(index, q) for q in queries]
    best = [exact_best(vectors, list(range(3000)), q) for q in queries]
    assert all(f is not None for f in found)
    same = [f[1] == pytest.approx(b[1], abs=1e-5) for f, b in zip(found, best, strict=True)]
    assert np.mean(same) >= 0.98
    assert np.mean([f[0] == f"k{10 * j}" for j, f in enumerate(found)]) >= 0.98  # its original


def test_the_similarity_returned_is_the_entrys_true_cosine() -> None:
    vectors = clustered(3000)
    index = filled(vectors)
    for query in clustered(50, seed=7):
        key, similarity = search(index, query)
        assert similarity == pytest.approx(float(vectors[int(key[1:])] @ query), abs=1e-6)
        assert similarity <= exact_best(vectors, list(range(3000)), query)[1] + 1e-6


@pytest.mark.parametrize("count", [50, 3000], ids=["flat", "ivf"])
def test_expired_entries_are_never_returned(count) -> None:
    vectors, now = clustered(count), time.time()
    index = filled(vectors, expires_at=now + 1_000)
    index.add(vectors[1:2], ["late"], expires_at=now + 2_000)
    assert search(index, vectors[1], now=now + 999)[1] == pytest.approx(1.0)
    assert search(index, vectors[1], now=now + 1_500)[0] == "late"
    assert search(index, vectors[1], now=now + 2_000) is None
    assert index.live == 0


@pytest.mark.parametrize("count", [50, 3000], ids=["flat", "ivf"])
def test_a_discarded_entry_gives_way_to_the_next_nearest(count) -> None:
    vectors = clustered(count)
    index = filled(vectors)
    query = near(vectors[:1])[0]
    live = list(range(count))
    for _ in range(3):
        key, similarity = search(index, query)
        assert (key, pytest.approx(similarity, abs=1e-5)) == exact_best(vectors, live, query)
        index.discard(key)
        live.remove(int(key[1:]))


def test_a_key_added_again_replaces_its_entry() -> None:
    vectors = clustered(50)
    index = filled(vectors)
    index.add(vectors[49:50], ["k0"])  # k0 now answers where k49 is
    assert index.live == 50
    assert search(index, vectors[0])[1] < 0.999  # k0's first vector is gone
    assert search(index, vectors[49])[0] in {"k0", "k49"}
    index.discard("k49")
    assert search(index, vectors[49]) == ("k0", pytest.approx(1.0))


def test_the_size_limit_drops_the_oldest_first() -> None:
    vectors = clustered(300)
    index = VectorIndex(DIM, flat_up_to=SMALL)
    for i in range(300):
        index.add(vectors[i : i + 1], [f"k{i}"], limit=100)
    index.wait()
    assert index.live == 100
    assert all(search(index, v)[0] != f"k{i}" for i, v in enumerate(vectors[:200]))
    assert all(search(index, v)[0] == f"k{i}" for i, v in enumerate(vectors[200:], 200))


def test_growth_trains_an_ivf_index_and_compaction_drops_tombstones() -> None:
    vectors = clustered(1000)
    index = filled(vectors[:150])
    assert index.kind == "flat"
    index.add(vectors[150:1000], [f"k{i}" for i in range(150, 1000)])
    index.wait()
    assert index.kind == "ivf" and index.live == 1000
    for i in range(0, 600):
        index.discard(f"k{i}")
    index.wait()
    assert index.live == 400 and index.kind == "ivf"
    assert index.describe().startswith("ivf")
    for i in range(600, 1000, 7):
        assert search(index, vectors[i]) == (f"k{i}", pytest.approx(1.0))
    for i in range(0, 600, 7):
        assert search(index, vectors[i])[0] not in {f"k{j}" for j in range(600)}


def test_what_changes_while_a_rebuild_trains_is_carried_over(monkeypatch) -> None:
    vectors = clustered(400)
    release, started = threading.Event(), threading.Event()
    real_build = vector_index.build

    def slow_build(rows, flat_up_to):
        started.set()
        release.wait(10)
        return real_build(rows, flat_up_to)

    index = filled(vectors[:150])
    monkeypatch.setattr(vector_index, "build", slow_build)
    index.add(vectors[150:250], [f"k{i}" for i in range(150, 250)])  # 250 >= 200: rebuild
    assert started.wait(10) and index.kind == "flat"
    index.add(vectors[250:400], [f"k{i}" for i in range(250, 400)])  # added meanwhile
    index.discard("k3")  # removed meanwhile, from the snapshot
    index.discard("k300")  # removed meanwhile, added after the snapshot
    index.add(vectors[7:8], ["k399"])  # replaced meanwhile
    release.set()
    index.wait()
    assert index.kind == "ivf" and index.live == 398
    assert search(index, vectors[250]) == ("k250", pytest.approx(1.0))
    assert search(index, vectors[3])[0] != "k3"
    assert search(index, vectors[300])[0] != "k300"
    assert search(index, vectors[7])[0] in {"k7", "k399"}
    assert search(index, vectors[399])[0] != "k399"


def test_a_failed_rebuild_keeps_the_old_index_and_waits_for_more_growth(
    monkeypatch, caplog
) -> None:
    calls = []

    def failing(rows, flat_up_to):
        calls.append(len(rows))
        raise MemoryError("no room")

    vectors = clustered(300)
    index = VectorIndex(DIM, flat_up_to=SMALL)
    monkeypatch.setattr(vector_index, "build", failing)
    with caplog.at_level(logging.WARNING, "smallfirst.cache"):
        for i in range(300):
            index.add(vectors[i : i + 1], [f"k{i}"])
            index.wait()
    assert calls == [200] and index.kind == "flat" and index.live == 300
    assert "index rebuild failed, keeping the old one" in caplog.text
    assert search(index, vectors[250]) == ("k250", pytest.approx(1.0))


@pytest.mark.parametrize("count", [50, 3000], ids=["flat", "ivf"])
def test_neighbours_are_the_k_nearest_live_ones_with_their_answers(count) -> None:
    vectors = clustered(count)
    index = filled(vectors)  # then every entry replaced, with an answer: half tombstones
    keys, answers = [f"k{i}" for i in range(count)], [i % 3 for i in range(count)]
    index.add(vectors, keys, answers=answers)
    index.wait()
    index.discard("k1")
    query = near(vectors[:1])[0]
    found = index.neighbours(query, 8)
    similarities = [n.similarity for n in found]
    assert len(found) == 8 and similarities == sorted(similarities, reverse=True)
    assert "k1" not in {n.key for n in found}
    assert all(n.answer == int(n.key[1:]) % 3 for n in found)  # kept through the rebuilds
    live = [i for i in range(count) if i != 1]
    exact = sorted(vectors[live] @ query, reverse=True)[:8]
    assert np.mean(np.isclose(similarities, exact, atol=1e-5)) >= 0.75


def test_entries_added_without_answers_never_agree() -> None:
    vectors = clustered(10)
    index = filled(vectors)
    answers = [n.answer for n in index.neighbours(vectors[0], 10)]
    assert len(set(answers)) == 10
