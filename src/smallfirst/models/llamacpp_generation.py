"""A generation request as a batching-engine job: one sampled token per step."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from smallfirst.models.generation_loop import DecodeSettings, TokenStream
from smallfirst.models.llamacpp_engine import BatchEngine

END = object()
"""Emitted last, after the final delta or an exception."""


class Sampler(Protocol):
    """Picks a sequence's next token: `SequenceSampler` (llama.cpp's chain, grammars) or
    `ChoiceSampler` (one of a list of strings)."""

    def sample(self, ctx: Any, batch_index: int) -> int: ...

    def settled(self) -> bytes | None:
        """The rest of the answer when nothing but it can follow (None: keep decoding)."""

    def close(self) -> None: ...


class GenerationJob:
    all_logits = False

    def __init__(
        self,
        llama: Any,
        prompt_tokens: list[int],
        settings: DecodeSettings,
        sampler: Sampler,
        emit: Callable[[Any], None],
        cancelled: threading.Event,
    ) -> None:
        self.prefix = prompt_tokens[:-1]
        self.cancelled = cancelled
        self._next = prompt_tokens[-1]
        self._sampler = sampler
        self._want_logprobs = settings.top_logprobs is not None
        self._emit = emit
        self._stream = TokenStream(llama, prompt_tokens, settings, emit)

    def step_tokens(self) -> list[int]:
        return [self._next]

    def consume(self, engine: BatchEngine, rows: list[int]) -> bool:
        token = self._sampler.sample(engine.ctx, rows[0])
        logits = engine.logits(rows[0]) if self._want_logprobs else None
        if self._stream.feed(token, logits):
            self._end(None)
            return True
        rest = self._sampler.settled()
        if rest is not None:
            self._stream.finish_forced(rest)
            self._end(None)
            return True
        self._next = token
        return False

    def rewind_to(self) -> int | None:
        return None

    def cancel(self) -> None:
        self._end("cancelled")

    def fail(self, error: BaseException) -> None:
        self._sampler.close()
        self._emit(error)
        self._emit(END)

    def _end(self, reason: str | None) -> None:
        self._sampler.close()
        self._stream.finish(reason)
        self._emit(END)
