"""Scoring fixed continuations of a prompt, as a batching-engine job.

Used to classify by likelihood: the prompt is evaluated once (or found in the KV cache, from
an earlier call with the same instructions and labels), then each candidate is evaluated as
[last prompt token, candidate tokens but the last], with logits for every row: row i predicts
candidate token i. A candidate longer than the engine's batch goes in batch-sized chunks over
several steps (one that never fitted once waited forever). The candidate's cells are dropped
again before the next one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np

from smallfirst.models.llamacpp_engine import BatchEngine


class ScoringJob:
    all_logits = True

    def __init__(self, prompt_tokens: list[int], candidates: list[list[int]], chunk: int) -> None:
        """`chunk`: the most rows one step may evaluate (the engine's batch size)."""
        self.prefix = prompt_tokens[:-1]
        self.cancelled = threading.Event()
        self.result: Future[list[float]] = Future()
        self._last = prompt_tokens[-1]
        self._candidates = candidates
        self._chunk = chunk
        self._scores: list[float] = []
        self._done_rows = 0
        """Rows of the current candidate evaluated so far (its chunks before this step's)."""
        self._partial = 0.0
        self._skip_empty()

    def _skip_empty(self) -> None:
        while len(self._scores) < len(self._candidates) and not self._current():
            self._scores.append(0.0)
        if len(self._scores) == len(self._candidates) and not self.result.done():
            self.result.set_result(self._scores)

    def _current(self) -> list[int]:
        return self._candidates[len(self._scores)]

    def step_tokens(self) -> list[int]:
        rows = [self._last, *self._current()[:-1]]
        return rows[self._done_rows : self._done_rows + self._chunk]

    def consume(self, engine: BatchEngine, rows: list[int]) -> bool:
        predicted = self._current()[self._done_rows : self._done_rows + len(rows)]
        logits = np.stack([engine.logits(row) for row in rows])
        peak = logits.max(axis=1, keepdims=True)
        log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
        picked = logits[np.arange(len(predicted)), predicted]
        self._partial += float((picked - log_norm).sum())
        self._done_rows += len(rows)
        if self._done_rows == len(self._current()):
            self._scores.append(self._partial)
            self._done_rows, self._partial = 0, 0.0
            self._skip_empty()
        return self.result.done()

    def rewind_to(self) -> int | None:
        """Back to the prompt once a candidate is scored; a candidate's next chunk needs its
        earlier chunks' cells."""
        return None if self._done_rows else len(self.prefix)

    def cancel(self) -> None:
        self.result.cancel()

    def fail(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)
