"""What one sequence does with each sampled token: detokenize, stop, record logprobs, report.

The batching engine samples the tokens of many sequences in one step; each sequence hands its
token to its own `TokenStream`, which turns tokens into `Delta`s for that sequence's caller.
Log probabilities come from the raw logits of the step, so no context keeps `logits_all`
(n_ctx x 262k floats for Gemma).
"""

from __future__ import annotations

import codecs
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


def token_logprob(
    logits: np.ndarray, token: int, top_k: int, text_of: Callable[[int], str]
) -> TokenLogprob:
    """The chosen token's log-probability (and the `top_k` best) under the raw distribution."""
    peak = float(logits.max())
    log_norm = peak + float(np.log(np.exp(logits - peak).sum()))
    top: dict[str, float] | None = None
    if top_k > 0:
        best = np.argpartition(-logits, top_k)[:top_k]
        top = {text_of(int(t)): float(logits[t]) - log_norm for t in best}
    return TokenLogprob(token=text_of(token), logprob=float(logits[token]) - log_norm, top=top)


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could be the start of a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


class TokenStream:
    """One sequence's output: feed it sampled tokens until `feed` says the answer is done,
    then `finish` sends the last delta with the finish reason and usage."""

    def __init__(
        self,
        llama: Any,
        prompt_tokens: list[int],
        settings: DecodeSettings,
        emit: Callable[[Delta], None],
    ) -> None:
        self.llama = llama
        self.settings = settings
        self.emit = emit
        self.prompt_size = len(prompt_tokens)
        self.history = list(prompt_tokens)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.pending_logprobs: list[TokenLogprob] = []
        self.produced = 0
        self.leading = settings.strip_leading
        self.finish_reason = "length"

    def text_of(self, token: int) -> str:
        return self.llama.detokenize([token], special=False).decode("utf-8", errors="replace")

    def feed(self, token: int, logits: np.ndarray | None) -> bool:
        """Take one sampled token (with the step's logits when logprobs are wanted); True
        when the answer is complete (end of generation, a stop sequence, or max_tokens)."""
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token):
            self.finish_reason = "stop"
            return True
        self.produced += 1
        piece = self.decoder.decode(self.llama.detokenize([token], prev_tokens=self.history))
        self.history.append(token)
        if logits is not None:
            top_k = self.settings.top_logprobs or 0
            self.pending_logprobs.append(token_logprob(logits, token, top_k, self.text_of))
        self.pending += piece
        if self.leading:
            self.pending = self.pending.lstrip()
            self.leading = not self.pending
        stops = self.settings.stops
        cut = min((self.pending.find(s) for s in stops if s in self.pending), default=-1)
        if cut >= 0:
            self.pending, self.finish_reason = self.pending[:cut], "stop"
            return True
        keep = held_back(self.pending, stops)
        ready = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        if ready or (self.pending_logprobs and not keep):
            self.emit(Delta(text=ready, logprobs=self.pending_logprobs or None))
            self.pending_logprobs = []
        return self.produced >= self.settings.max_tokens

    def finish_forced(self, rest: bytes) -> None:
        """End with `rest`, text nothing else could follow (see `llamacpp_choice`), counted
        as its tokenization and cut to what `max_tokens` leaves."""
        tokens = self.llama.tokenize(rest, add_bos=False, special=False) if rest else []
        room = self.settings.max_tokens - self.produced
        if len(tokens) > room:
            rest, self.finish_reason = self.llama.detokenize(tokens[:room]), "length"
        else:
            self.finish_reason = "stop"
        self.produced += min(len(tokens), room)
        self.pending += self.decoder.decode(rest, final=True)
        if self.leading:
            self.pending = self.pending.lstrip()

    def finish(self, reason: str | None = None) -> None:
        """Send the held-back text, the finish reason (`reason` overrides, e.g. `cancelled`)
        and the usage."""
        if reason is not None:
            self.finish_reason = reason
        stopped = self.finish_reason == "stop"
        tail = self.pending + ("" if stopped else self.decoder.decode(b"", final=True))
        self.emit(
            Delta(
                text=tail,
                finish_reason=self.finish_reason,
                usage=Usage(input_tokens=self.prompt_size, output_tokens=self.produced),
                logprobs=self.pending_logprobs or None,
            )
        )
