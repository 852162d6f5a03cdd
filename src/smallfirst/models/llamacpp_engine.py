"""Continuous batching over one llama.cpp context: every slot is a sequence of the context,
and each step decodes the next token of every running sequence in a single `llama_decode`
(then a chunk of a prompt still being read, see `BatchEngine._step`).

One thread owns the context (it is not thread-safe). Requests arrive as jobs; a job takes a
free slot, reuses whatever prefix of its prompt the KV cache already holds (see
`llamacpp_slots`), and frees the slot the step it finishes or is cancelled, so a waiting job
starts on the next step. The last prompt token is always evaluated fresh: its logits give the
first output.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from typing import Any, Protocol

import numpy as np

from smallfirst.errors import UpstreamError
from smallfirst.models.llamacpp_slots import Placement, Slot, place

_STOP = object()


def default_threads() -> int:
    """The cores this process may run on (llama-cpp-python's own default is half of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Job(Protocol):
    """A request's work on a sequence. `prefix` goes into the KV cache first (reused where it
    is there already); then each step evaluates `step_tokens()` and hands the logits rows to
    `consume`, which says whether the job is done."""

    prefix: list[int]
    cancelled: threading.Event
    all_logits: bool
    """Logits for every token of a step (scoring) instead of the last only (generation)."""

    def step_tokens(self) -> list[int]: ...

    def consume(self, engine: BatchEngine, rows: list[int]) -> bool: ...

    def rewind_to(self) -> int | None:
        """Cache length to cut back to after `consume` (None: keep what was evaluated)."""

    def fail(self, error: BaseException) -> None: ...

    def cancel(self) -> None: ...


class BatchEngine:
    def __init__(self, llama: Any, slots: int, n_batch: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.llama = llama
        self.ctx = llama._ctx.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_vocab = llama.n_vocab()
        self.n_batch = n_batch
        self.slots = [Slot(seq_id) for seq_id in range(slots)]
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Job] = deque()
        self._clock = 0
        self.evaluated = 0
        """Tokens decoded so far (prompt tokens found in the cache are not)."""
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    # -- called from any thread ---------------------------------------------------------------
    def submit(self, job: Job) -> None:
        self._inbox.put(job)

    def close(self) -> None:
        """Cancel what runs or waits, stop the thread, free the batch (the context stays)."""
        self._inbox.put(_STOP)
        self._thread.join()
        self._lib.llama_batch_free(self._batch)

    # -- called by jobs, on the engine thread -------------------------------------------------
    def logits(self, row: int) -> np.ndarray:
        """A copy of output row `row` of the last decode."""
        pointer = self._lib.llama_get_logits_ith(self.ctx, row)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy()

    # -- the engine thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            busy = self._waiting or any(s.job is not None for s in self.slots)
            try:
                item = self._inbox.get(block=not busy)
                while True:
                    if item is _STOP:
                        self._shut_down()
                        return
                    self._waiting.append(item)
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            try:
                self._admit()
                self._step()
            except Exception as exc:  # never die silently: the callers would wait forever
                self._fail_all(UpstreamError(f"the batching engine failed: {exc}"))

    def _admit(self) -> None:
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled.is_set():
                self._waiting.popleft()
                job.cancel()
                continue
            placement = place(self.slots, job.prefix)
            if placement is None:
                return
            self._waiting.popleft()
            self._seat(placement, job)

    def _seat(self, placement: Placement, job: Job) -> None:
        slot, reuse = placement.slot, placement.reuse
        if placement.source is None:
            self._cut(slot, reuse)
        else:
            # Streams copy whole (llama.cpp copies the buffer before the next decode); the
            # cells past the shared prefix are dropped from the copy at once.
            self._lib.llama_memory_seq_cp(self.memory, placement.source.seq_id, slot.seq_id, -1, -1)
            self._lib.llama_memory_seq_rm(self.memory, slot.seq_id, reuse, -1)
            slot.cached = list(job.prefix[:reuse])
        slot.job = job

    def _cut(self, slot: Slot, keep: int) -> None:
        """Drop the slot's cells from position `keep` on."""
        if len(slot.cached) > keep:
            self._lib.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1)
            del slot.cached[keep:]

    def _release(self, slot: Slot) -> None:
        """Free the slot now; keep its prefix for later requests, free the rest of its cells."""
        job, slot.job = slot.job, None
        self._clock += 1
        slot.used_at = self._clock
        self._cut(slot, min(len(job.prefix), len(slot.cached)))

    def _step(self) -> None:
        """One step: every generating sequence's next token in one decode, the scoring
        candidates in another, then one chunk of one waiting prompt in a third.

        llama.cpp gives a sequence the same logits whatever else is in the batch only when
        the batch holds one token per sequence, or tokens of one sequence alone (measured on
        0.3.36; batches mixing several multi-token sequences shift logits by up to ~1). Kept
        apart like this, a greedy answer is the same alone or among others."""
        running = [s for s in self.slots if s.job is not None]
        for slot in running:
            if slot.job.cancelled.is_set():
                slot.job.cancel()
                self._release(slot)
        running = [s for s in running if s.job is not None]
        ready = [s for s in running if len(s.cached) >= len(s.job.prefix)]
        reading = [s for s in running if len(s.cached) < len(s.job.prefix)]
        self._decode([s for s in ready if not s.job.all_logits])
        self._decode([s for s in ready if s.job is not None and s.job.all_logits])
        if reading:
            self._read(reading[0])

    def _read(self, slot: Slot) -> None:
        """Evaluate the next chunk of the slot's prefix (no logits needed)."""
        chunk = slot.job.prefix[len(slot.cached) : len(slot.cached) + self.n_batch]
        self._add(slot, chunk, 0, logits_all=None)
        self._batch.n_tokens = len(chunk)
        self._run_batch()

    def _decode(self, slots: list[Slot]) -> None:
        """Evaluate each slot's step tokens in one batch and hand every job its rows."""
        plan: list[tuple[Slot, int, int]] = []
        rows = 0
        for slot in slots:
            tokens = slot.job.step_tokens()
            if rows + len(tokens) > self.n_batch:
                break  # the rest go next step
            self._add(slot, tokens, rows, logits_all=slot.job.all_logits)
            plan.append((slot, rows, len(tokens)))
            rows += len(tokens)
        self._batch.n_tokens = rows
        if not plan or not self._run_batch():
            return
        for slot, first, count in plan:
            job = slot.job
            rows_of = list(range(first, first + count)) if job.all_logits else [first + count - 1]
            try:
                done = job.consume(self, rows_of)
            except Exception as exc:  # a bug in one job must not stop the others
                job.fail(exc)
                done = True
            rewind = job.rewind_to()
            if rewind is not None:
                self._cut(slot, rewind)
            if done:
                self._release(slot)

    def _run_batch(self) -> bool:
        status = self._lib.llama_decode(self.ctx, self._batch)
        self.evaluated += self._batch.n_tokens
        if status != 0:
            self._fail_all(UpstreamError(f"llama_decode failed with status {status}"))
        return status == 0

    def _add(self, slot: Slot, tokens: list[int], row: int, logits_all: bool | None) -> None:
        """Put `tokens` at the end of the slot's sequence; logits: None none, False the
        last token's, True every token's."""
        batch, start = self._batch, len(slot.cached)
        for offset, token in enumerate(tokens):
            index = row + offset
            batch.token[index] = token
            batch.pos[index] = start + offset
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = slot.seq_id
            last = offset == len(tokens) - 1
            batch.logits[index] = logits_all is not None and (logits_all or last)
        slot.cached.extend(tokens)

    def _fail_all(self, error: BaseException) -> None:
        for slot in self.slots:
            if slot.job is not None:
                slot.job.fail(error)
                self._release(slot)
                self._cut(slot, 0)  # what a failed decode left in the cache is unknown

    def _shut_down(self) -> None:
        for slot in self.slots:
            if slot.job is not None:
                slot.job.cancel()
                self._release(slot)
        while self._waiting:
            self._waiting.popleft().cancel()
