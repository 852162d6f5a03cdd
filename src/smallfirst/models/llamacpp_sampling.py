"""A llama.cpp sampler chain per sequence, so sequences decoded in one batch each keep their
own grammar, temperature and seed.

The chain is the one `Llama.generate` builds (grammar first; greedy at temperature 0, else
top-k 40, typical 1, top-p, min-p 0.05, temperature, seeded draw), so answers do not change
with the move to batched decoding.

A grammar applied first checks every token of the vocabulary at every step (262k for Gemma 3,
most of a constrained step's time). Greedy decoding has an exact shortcut, the one llama.cpp's
own server takes: the most likely token overall, when the grammar allows it, is also the most
likely allowed token, so only that one token is checked; the full pass runs only when the
grammar refuses it. Sampling at a temperature keeps the full pass: the shortcut would change
the distribution drawn from.

Greedy decoding without a grammar skips the chain's sampling call too: `llama_sampler_sample`
fills a candidate array over the whole vocabulary before the greedy rule scans it (about
1.5 ms a row here, per sequence per step), while an argmax over the logits row picks the same
token (the first maximum, as llama.cpp's greedy rule does) in a tenth of that.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from smallfirst.errors import SchemaError
from smallfirst.models.generation_loop import DecodeSettings


class SequenceSampler:
    """Owns a native sampler chain; `close` frees it (also when the sequence is cancelled)."""

    def __init__(self, vocab: Any, settings: DecodeSettings, grammar: str | None) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._greedy = settings.temperature == 0.0
        self._grammar = grammar is not None
        if grammar is not None:
            rule = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not rule:
                self.close()
                raise SchemaError("the grammar does not parse as GBNF (llama.cpp refused it)")
            self._add(rule)
        if settings.temperature == 0.0:
            self._add(llama_cpp.llama_sampler_init_greedy())
            return
        seed = llama_cpp.LLAMA_DEFAULT_SEED if settings.seed is None else settings.seed
        self._add(llama_cpp.llama_sampler_init_top_k(40))
        self._add(llama_cpp.llama_sampler_init_typical(1.0, 1))
        self._add(llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
        self._add(llama_cpp.llama_sampler_init_min_p(0.05, 1))
        self._add(llama_cpp.llama_sampler_init_temp(settings.temperature))
        self._add(llama_cpp.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        self._lib.llama_sampler_chain_add(self.chain, sampler)

    def sample(self, ctx: Any, batch_index: int) -> int:
        """Draw from the logits of output row `batch_index` of the last decode (and accept
        the token, which advances the grammar)."""
        if self._greedy:
            token = self._argmax(ctx, batch_index)
            if not self._grammar or self._allowed(token, ctx, batch_index):
                self._lib.llama_sampler_accept(self.chain, token)
                return token
        return int(self._lib.llama_sampler_sample(self.chain, ctx, batch_index))

    def _logits(self, ctx: Any, batch_index: int) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(ctx, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))

    def _argmax(self, ctx: Any, batch_index: int) -> int:
        """The most likely token; the first of equals, like llama.cpp's greedy rule."""
        return int(self._logits(ctx, batch_index).argmax())

    def _allowed(self, token: int, ctx: Any, batch_index: int) -> bool:
        """Whether the grammar (the chain's first sampler) allows `token`."""
        logits = self._logits(ctx, batch_index)
        one = self._lib.llama_token_data(token, float(logits[token]), 0.0)
        candidates = self._lib.llama_token_data_array(ctypes.pointer(one), 1, -1, False)
        grammar = self._lib.llama_sampler_chain_get(self.chain, 0)
        self._lib.llama_sampler_apply(grammar, ctypes.byref(candidates))
        return bool(candidates.size == 1 and one.logit != float("-inf"))

    def settled(self) -> bytes | None:
        """Never known ahead: a grammar is opaque here."""
        return None

    def close(self) -> None:
        if self.chain is not None:
            self._lib.llama_sampler_free(self.chain)
            self.chain = None
