"""One semantic group's entries, searched by faiss: exact (a flat index) while the group is
small, then an inverted-file index (IVF-Flat) whose coarse quantizer is trained on the group's
own vectors and retrained as the group grows.

IVF over HNSW, measured on 100k banking77-like entries, one thread, a loaded machine: both
meet the lookup target at recall@1 0.99 (HNSW M=32 ef=64 0.24 ms, IVF 1024 lists 32 probed
0.6 ms), but an HNSW insertion is a graph search (15-35 s for 100k, ~0.3 ms per stored answer
on the event loop) where an IVF add is one quantizer lookup; faiss's HNSW cannot remove
entries, and its filtered search degrades as tombstones grow, where an inverted list skips
them exactly; an IVF index is retrained (~10 s at 100k) off the loop while the old one serves.

Removal: an entry that expires, is replaced under its key, falls to the size limit or is found
gone from the store becomes a tombstone; searches skip tombstones (a bitmap of live ids passed
to faiss as an ID selector), and once tombstones are as many as the live entries the index is
rebuilt from the live ones. Rebuilds (growth, compaction) train on a copy in a background
thread; what is added or removed meanwhile is carried onto the new index before it replaces the
old one, so a lookup never waits for a training.

Each entry also keeps its answer's signature (cache/ambiguity.py), so a lookup can tell from its
`k` nearest alone whether they agree.

Similarity: IVF-Flat stores vectors uncompressed, and the score returned is recomputed here
from the stored vector, so it is the entry's true cosine. The approximation can only miss a
nearer entry (recall < 1), never make a farther one look near: a hit above a threshold is as
close as it would have been under exact search.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smallfirst.cache.ambiguity import Neighbour, signature

log = logging.getLogger("smallfirst.cache")

FLAT_UP_TO = 8_192
"""Below this many live entries the search is exact (a flat scan is ~0.5 ms at this size)."""
GROWTH = 2.0
"""Retrain once the live entries are this many times those the index was built for."""
MIN_POINTS_PER_LIST = 39
"""faiss's k-means wants at least this many training points per centroid."""
TRAIN_POINTS_PER_LIST = 64
"""Training sample per inverted list (faiss subsamples above it): seconds, not minutes."""
KMEANS_ITERATIONS = 10
MIN_TOMBSTONES = 64
"""Compaction waits for at least this many tombstones (a small group is cheap to scan)."""


def lists_for(entries: int) -> int:
    """Inverted lists: ~4 sqrt(n), the usual balance of quantizer and list scans, but never
    fewer than MIN_POINTS_PER_LIST training points each."""
    return max(1, min(int(4 * math.sqrt(entries)), entries // MIN_POINTS_PER_LIST))


def probes_for(lists: int) -> int:
    """Lists searched per lookup: 1/32 of them, at least 16 (recall@1 ~0.99 at 100k)."""
    return min(lists, max(16, lists // 32))


def build(vectors: np.ndarray, flat_up_to: int = FLAT_UP_TO) -> Any:
    """A faiss inner-product index holding `vectors` (ids 0..n-1 in order): flat below
    `flat_up_to` rows, IVF-Flat trained on them at or above."""
    import faiss

    count, dim = vectors.shape
    if count < flat_up_to:
        flat = faiss.IndexFlatIP(dim)
        flat.add(vectors)
        return flat
    lists = lists_for(count)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.niter = KMEANS_ITERATIONS
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    ivf.cp.seed = 1234
    ivf.train(vectors)
    ivf.nprobe = probes_for(lists)
    ivf.add(vectors)
    return ivf


def kind_of(index: Any) -> str:
    import faiss

    return "ivf" if isinstance(index, faiss.IndexIVF) else "flat"


@dataclass
class _Entries:
    """Rows by id (the faiss id): vector, key, expiry, answer signature and whether it is
    live. Rows are only ever appended (a removal clears a live bit), so a reader holding these
    arrays may read rows below the count it saw without the lock."""

    vectors: np.ndarray
    keys: list[str] = field(default_factory=list)
    expires: np.ndarray = field(default_factory=lambda: np.zeros(0))
    answers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    """A little-endian bitmap, the layout faiss's IDSelectorBitmap reads in place."""

    @property
    def count(self) -> int:
        return len(self.keys)

    def is_live(self, at: int) -> bool:
        return bool(self.live[at >> 3] & (1 << (at & 7)))

    def kill(self, at: int) -> None:
        self.live[at >> 3] &= np.uint8(~(1 << (at & 7)) & 0xFF)

    def live_ids(self, below: int | None = None) -> np.ndarray:
        bits = np.unpackbits(self.live, bitorder="little")[: self.count if below is None else below]
        return np.flatnonzero(bits)

    def append(
        self,
        vectors: np.ndarray,
        keys: list[str],
        expires: float | np.ndarray,
        answers: np.ndarray,
    ) -> bool:
        """Append live rows; True when the arrays were reallocated (the bitmap moved)."""
        start, end = self.count, self.count + len(keys)
        moved = end > len(self.vectors)
        if moved:
            capacity = max(end, 2 * len(self.vectors), 64)
            self.vectors = _grown(self.vectors, capacity)
            self.expires = _grown(self.expires, capacity)
            self.answers = _grown(self.answers, capacity)
            self.live = _grown(self.live, (capacity + 7) // 8)
        self.vectors[start:end] = vectors
        self.expires[start:end] = expires
        self.answers[start:end] = answers
        for at in range(start, end):
            self.live[at >> 3] |= np.uint8(1 << (at & 7))
        self.keys.extend(keys)
        return moved

    def rows(self, ids: np.ndarray) -> _Entries:
        """Copies of these rows, renumbered 0..len(ids)-1 in order, all live."""
        out = _Entries(np.zeros((0, self.vectors.shape[1]), dtype=np.float32))
        keys = [self.keys[at] for at in ids]
        out.append(self.vectors[ids], keys, self.expires[ids], self.answers[ids])
        return out


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    return out


@dataclass
class _Rebuilt:
    """A rebuild's result, made unlocked from a snapshot of the live ids below `upto`."""

    entries: _Entries
    index: Any
    ids: dict[str, int]
    expiry: list[tuple[float, int]]
    snapshot: np.ndarray
    upto: int


class VectorIndex:
    """Nearest live entries by cosine (unit vectors, inner product); thread-safe."""

    def __init__(self, dim: int, flat_up_to: int = FLAT_UP_TO) -> None:
        self.dim = dim
        self.flat_up_to = flat_up_to
        self._lock = threading.Lock()
        self._entries = _Entries(np.zeros((0, dim), dtype=np.float32))
        self._index = build(self._entries.vectors, flat_up_to)
        self._ids: dict[str, int] = {}
        """Live key -> id."""
        self._expiry: list[tuple[float, int]] = []
        """(expires_at, id) min-heap; a pair whose id died otherwise is skipped."""
        self._oldest = 0
        """No live id is below this one (the size limit drops from here)."""
        self._next_growth = flat_up_to
        """Live entries at which the index is rebuilt for its size (first as IVF)."""
        self._skip_dead: Any = None
        """faiss search parameters skipping tombstones (with what they point into)."""
        self._rebuild: threading.Thread | None = None

    @property
    def live(self) -> int:
        return len(self._ids)

    @property
    def kind(self) -> str:
        """`flat` (exact) or `ivf` (approximate)."""
        return kind_of(self._index)

    def describe(self) -> str:
        index = self._index
        if self.kind == "ivf":
            return f"ivf, {index.nlist} lists, {index.nprobe} probed"
        return "flat (exact)"

    def add(
        self,
        vectors: np.ndarray,
        keys: list[str],
        expires_at: float = math.inf,
        limit: int | None = None,
        answers: Sequence[int] | None = None,
    ) -> None:
        """Rows of `vectors` (unit length) under `keys`; a key already here is replaced.
        `limit`: the most live entries kept, the oldest dropped first (the store's order).
        `answers`: each row's answer signature; none given, no two rows agree (the ambiguity
        check then refuses any hit with another entry within its margin)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        signatures = np.array(
            [signature(key) for key in keys] if answers is None else answers, dtype=np.int64
        )
        with self._lock:
            for key in keys:
                if key in self._ids:
                    self._kill(self._ids[key])
            self._append(vectors, keys, expires_at, signatures)
            while limit is not None and self.live > limit:
                self._drop_oldest()
            self._expire(time.time())
            self._maybe_rebuild()

    def neighbours(
        self, vector: np.ndarray, k: int = 1, now: float | None = None
    ) -> list[Neighbour]:
        """The `k` nearest live entries found (fewer when fewer are found), nearest first,
        each with its true cosine similarity to `vector` and its answer's signature."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, self.dim)
        with self._lock:
            self._expire(time.time() if now is None else now)
            if not self._ids:
                return []
            params = None if self.live == self._entries.count else self._skipping_dead()
            _, ids = self._index.search(query, k, params=params)
            entries = self._entries
            found = [int(at) for at in ids[0] if at >= 0 and entries.is_live(int(at))]
            similarities = entries.vectors[found] @ query[0]
            out = [
                Neighbour(entries.keys[at], float(sim), int(entries.answers[at]))
                for at, sim in zip(found, similarities, strict=True)
            ]
        return sorted(out, key=lambda n: -n.similarity)

    def discard(self, key: str) -> None:
        with self._lock:
            at = self._ids.get(key)
            if at is not None:
                self._kill(at)
                self._maybe_rebuild()

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the rebuild under way (if any) has replaced the index."""
        rebuild = self._rebuild
        if rebuild is not None:
            rebuild.join(timeout_s)

    def _append(
        self,
        vectors: np.ndarray,
        keys: list[str],
        expires: float | np.ndarray,
        answers: np.ndarray,
    ) -> None:
        start = self._entries.count
        if self._entries.append(vectors, keys, expires, answers):
            self._skip_dead = None
        self._index.add(vectors)
        for at, key in enumerate(keys, start):
            self._ids[key] = at
            expires_at = float(self._entries.expires[at])
            if math.isfinite(expires_at):
                heapq.heappush(self._expiry, (expires_at, at))

    def _kill(self, at: int) -> None:
        entries = self._entries
        if entries.is_live(at):
            entries.kill(at)
            del self._ids[entries.keys[at]]

    def _drop_oldest(self) -> None:
        entries = self._entries
        while not entries.is_live(self._oldest):
            self._oldest += 1
        self._kill(self._oldest)

    def _expire(self, now: float) -> None:
        heap, entries = self._expiry, self._entries
        while heap and heap[0][0] <= now:
            expires_at, at = heapq.heappop(heap)
            if entries.expires[at] == expires_at:
                self._kill(at)

    def _skipping_dead(self) -> Any:
        if self._skip_dead is None:
            import faiss

            live = self._entries.live
            selector = faiss.IDSelectorBitmap(len(live), faiss.swig_ptr(live))
            params: Any
            if isinstance(self._index, faiss.IndexIVF):
                params = faiss.SearchParametersIVF()
                params.nprobe = self._index.nprobe
            else:
                params = faiss.SearchParameters()
            params.sel = selector
            self._skip_dead = (params, selector, live)  # faiss reads `live` in place
        return self._skip_dead[0]

    def _maybe_rebuild(self) -> None:
        """Start a rebuild when the group outgrew its index or is half tombstones."""
        if self._rebuild is not None:
            return
        live, dead = self.live, self._entries.count - self.live
        if live >= self._next_growth or (dead >= MIN_TOMBSTONES and dead >= live):
            entries = self._entries
            snapshot = entries.live_ids()
            self._next_growth = max(self.flat_up_to, int(GROWTH * len(snapshot)))
            self._rebuild = threading.Thread(
                target=self._rebuild_from, args=(entries, snapshot, entries.count), daemon=True
            )
            self._rebuild.start()

    def _rebuild_from(self, entries: _Entries, snapshot: np.ndarray, upto: int) -> None:
        """Copy, train and fill unlocked (rows below `upto` never change); then swap."""
        try:
            fresh = entries.rows(snapshot)
            index = build(fresh.vectors[: fresh.count], self.flat_up_to)
            expiry = [(float(e), at) for at, e in enumerate(fresh.expires[: fresh.count])]
            expiry = [pair for pair in expiry if math.isfinite(pair[0])]
            heapq.heapify(expiry)
            ids = {key: at for at, key in enumerate(fresh.keys)}
            rebuilt = _Rebuilt(fresh, index, ids, expiry, snapshot, upto)
        except Exception as exc:  # the old index keeps serving; the next growth tries again
            log.warning("semantic cache: index rebuild failed, keeping the old one: %s", exc)
            with self._lock:
                self._rebuild = None
            return
        with self._lock:
            try:
                self._swap(rebuilt)
            finally:
                self._rebuild = None

    def _swap(self, rebuilt: _Rebuilt) -> None:
        """Locked: the rebuilt index, with what changed since its snapshot carried over."""
        old, fresh = self._entries, rebuilt.entries
        bits = np.unpackbits(old.live, bitorder="little")
        for at in np.flatnonzero(bits[rebuilt.snapshot] == 0):  # removed meanwhile
            fresh.kill(int(at))
            del rebuilt.ids[fresh.keys[at]]
        added = rebuilt.upto + np.flatnonzero(bits[rebuilt.upto : old.count])
        self._entries, self._index, self._skip_dead = fresh, rebuilt.index, None
        self._ids, self._expiry, self._oldest = rebuilt.ids, rebuilt.expiry, 0
        if len(added):
            keys = [old.keys[at] for at in added]
            self._append(old.vectors[added], keys, old.expires[added], old.answers[added])
        log.info("semantic cache: index rebuilt (%s, %d live entries)", self.kind, self.live)
