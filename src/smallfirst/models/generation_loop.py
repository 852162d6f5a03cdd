"""The token loop run on a llama.cpp worker thread: sample, detokenize, stop, report.

We drive `Llama.generate` ourselves instead of `create_completion` to get per-token log
probabilities without `logits_all=True` (which would hold n_ctx x 262k floats for Gemma).
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from smallfirst.types import Delta, GenerationParams, TokenLogprob, Usage

DEFAULT_MAX_TOKENS = 512


@dataclass(slots=True)
class DecodeSettings:
    max_tokens: int
    temperature: float
    top_p: float
    stops: list[str]
    seed: int | None
    top_logprobs: int | None
    """None: no logprobs; 0: the chosen token's only; k: also the k most likely."""
    strip_leading: bool = False
    """Drop whitespace before the first text (after a `Assistant:` cue)."""

    @classmethod
    def from_params(
        cls, params: GenerationParams, extra_stops: list[str], room: int, strip_leading: bool
    ) -> DecodeSettings:
        wanted = params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS
        return cls(
            max_tokens=max(1, min(wanted, room)),
            temperature=0.0 if params.temperature is None else params.temperature,
            top_p=1.0 if params.top_p is None else params.top_p,
            stops=[s for s in [*(params.stop or []), *extra_stops] if s],
            seed=params.seed,
            top_logprobs=(params.top_logprobs or 0) if params.logprobs else None,
            strip_leading=strip_leading,
        )


class LogprobRecorder:
    """A logits processor that remembers the distribution the next token is drawn from."""

    def __init__(self) -> None:
        self.logits: np.ndarray | None = None
        self.log_norm = 0.0

    def __call__(self, _input_ids: Any, logits: np.ndarray) -> np.ndarray:
        self.logits = np.array(logits, dtype=np.float32, copy=True)
        peak = float(self.logits.max())
        self.log_norm = peak + float(np.log(np.exp(self.logits - peak).sum()))
        return logits

    def logprob(self, token: int, top_k: int, text_of: Callable[[int], str]) -> TokenLogprob:
        assert self.logits is not None
        chosen = float(self.logits[token]) - self.log_norm
        top: dict[str, float] | None = None
        if top_k > 0:
            best = np.argpartition(-self.logits, top_k)[:top_k]
            top = {text_of(int(t)): float(self.logits[t]) - self.log_norm for t in best}
        return TokenLogprob(token=text_of(token), logprob=chosen, top=top)


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


def run_generation(
    llama: Any,
    prompt_tokens: list[int],
    settings: DecodeSettings,
    grammar: Any,
    emit: Callable[[Delta], None],
    cancelled: threading.Event,
) -> None:
    if settings.seed is not None:
        llama.set_seed(settings.seed)
    recorder = LogprobRecorder() if settings.top_logprobs is not None else None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    history = list(prompt_tokens)
    import llama_cpp

    vocab = llama._model.vocab

    def text_of(token: int) -> str:
        return llama.detokenize([token], special=False).decode("utf-8", errors="replace")

    pending, pending_logprobs = "", []
    finish, produced = "length", 0
    leading = settings.strip_leading
    generator = llama.generate(
        prompt_tokens,
        temp=settings.temperature,
        top_p=settings.top_p,
        grammar=grammar,
        logits_processor=[recorder] if recorder else None,
    )
    for token in generator:
        if cancelled.is_set():
            finish = "cancelled"
            break
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finish = "stop"
            break
        produced += 1
        piece = decoder.decode(llama.detokenize([token], prev_tokens=history))
        history.append(token)
        if recorder is not None:
            pending_logprobs.append(recorder.logprob(token, settings.top_logprobs or 0, text_of))
        pending += piece
        if leading:
            pending = pending.lstrip()
            leading = not pending
        cut = min((pending.find(s) for s in settings.stops if s in pending), default=-1)
        if cut >= 0:
            pending, finish = pending[:cut], "stop"
            break
        keep = held_back(pending, settings.stops)
        ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
        if ready or (pending_logprobs and not keep):
            emit(Delta(text=ready, logprobs=pending_logprobs or None))
            pending_logprobs = []
        if produced >= settings.max_tokens:
            break
    generator.close()
    tail = pending + (decoder.decode(b"", final=True) if finish != "stop" else "")
    emit(
        Delta(
            text=tail,
            finish_reason=finish,
            usage=Usage(input_tokens=len(prompt_tokens), output_tokens=produced),
            logprobs=pending_logprobs or None,
        )
    )
