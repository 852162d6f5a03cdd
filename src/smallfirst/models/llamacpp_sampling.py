"""A llama.cpp sampler chain per sequence, so sequences decoded in one batch each keep their
own grammar, temperature and seed.

The chain is the one `Llama.generate` builds (grammar first; greedy at temperature 0, else
top-k 40, typical 1, top-p, min-p 0.05, temperature, seeded draw), so answers do not change
with the move to batched decoding.
"""

from __future__ import annotations

from typing import Any

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
        return int(self._lib.llama_sampler_sample(self.chain, ctx, batch_index))

    def close(self) -> None:
        if self.chain is not None:
            self._lib.llama_sampler_free(self.chain)
            self.chain = None
