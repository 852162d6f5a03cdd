"""Greedy decoding held to a fixed list of strings (`GenerationParams.choices`), without a
grammar and without decoding what the list already decides.

Writing one of 77 intent labels under a GBNF grammar costs a decode step per token of the
label, and each step's row of logits covers Gemma 3's 262k-token vocabulary. Two things make
most of those steps unnecessary:

- The tokens a grammar of string alternatives allows are exactly the vocabulary pieces that
  keep the output a prefix of some choice (and an end-of-generation token once it equals
  one). `ChoiceIndex` lists them per output-so-far, once per label set, so a step reads a few
  dozen logits instead of checking every token against a grammar.
- Once a single choice is still consistent with the output, the rest of it is forced: the
  grammar would accept nothing else. The answer is then known, so it is finished at once
  rather than decoded token by token (SGLang calls this jump-forward decoding).

Greedy over the allowed tokens picks what the grammar's greedy pass picks, so the answer is
the same string (`tests/models/test_llamacpp_choice.py` compares the two on the real model).
What differs: log-probabilities cover the tokens the model chose between, not the forced
rest, and the output token count of the forced rest is its tokenization's length.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_CACHED_STATES = 4096
"""Outputs-so-far remembered per label set (a label set has a few hundred in practice)."""


def choices_grammar(choices: list[str]) -> str:
    """GBNF allowing exactly one of `choices`: the exact fallback when the shortcut does not
    apply (sampling at a temperature, stop sequences)."""
    return "root ::= " + " | ".join(json.dumps(c, ensure_ascii=False) for c in choices)


@dataclass(frozen=True, slots=True)
class PieceTable:
    """Every token's text as bytes, read once from the vocabulary (about a second for 262k)."""

    tokens_of: dict[bytes, tuple[int, ...]]
    """Token ids per piece; control tokens, whose piece is empty, are left out (a grammar
    refuses them too)."""
    end_tokens: tuple[int, ...]
    """End-of-generation tokens: allowed once the output equals a choice."""
    longest: int

    @classmethod
    def from_vocab(cls, vocab: Any) -> PieceTable:
        import llama_cpp

        buffer = ctypes.create_string_buffer(256)
        grouped: dict[bytes, list[int]] = {}
        end_tokens = []
        for token in range(int(llama_cpp.llama_vocab_n_tokens(vocab))):
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                end_tokens.append(token)
                continue
            size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, False)
            if size > 0:
                grouped.setdefault(buffer.raw[:size], []).append(token)
        return cls(
            tokens_of={piece: tuple(ids) for piece, ids in grouped.items()},
            end_tokens=tuple(end_tokens),
            longest=max(map(len, grouped), default=1),
        )


@dataclass(frozen=True, slots=True)
class Options:
    """What may come next after one output-so-far."""

    tokens: np.ndarray
    """Allowed token ids, ascending (ties in the logits go to the lowest id, as in greedy)."""
    pieces: tuple[bytes, ...]
    """Each allowed token's piece (b"" for an end-of-generation token)."""
    live: tuple[bytes, ...]
    """The choices the output is still a prefix of."""


class ChoiceIndex:
    """The allowed next tokens for every output-so-far of one list of choices."""

    def __init__(self, choices: list[str], table: PieceTable) -> None:
        self.choices = tuple(dict.fromkeys(c.encode("utf-8") for c in choices))
        self.table = table
        self._options: dict[bytes, Options] = {}

    def options(self, written: bytes) -> Options:
        known = self._options.get(written)
        if known is not None:
            return known
        live = tuple(c for c in self.choices if c.startswith(written))
        allowed: dict[int, bytes] = {}
        for choice in live:
            rest = choice[len(written) :]
            for size in range(1, min(len(rest), self.table.longest) + 1):
                for token in self.table.tokens_of.get(rest[:size], ()):
                    allowed[token] = rest[:size]
        if written in live:
            allowed.update((token, b"") for token in self.table.end_tokens)
        order = sorted(allowed)
        options = Options(np.asarray(order, dtype=np.int64), tuple(allowed[t] for t in order), live)
        if len(self._options) < MAX_CACHED_STATES:
            self._options[written] = options
        return options


class ChoiceSampler:
    """One sequence's greedy pick among the allowed tokens; `settled` says when the list
    alone decides the rest. Used by `GenerationJob` in place of a `SequenceSampler`."""

    def __init__(self, index: ChoiceIndex, n_vocab: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._index = index
        self._n_vocab = n_vocab
        self._written = b""

    def sample(self, ctx: Any, batch_index: int) -> int:
        options = self._index.options(self._written)
        pointer = self._lib.llama_get_logits_ith(ctx, batch_index)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        best = int(logits[options.tokens].argmax())
        self._written += options.pieces[best]
        return int(options.tokens[best])

    def settled(self) -> bytes | None:
        """The forced rest of the answer once one choice alone fits what was written (b"":
        the output is that choice, only an end token can follow); None while several do."""
        live = self._index.options(self._written).live
        if len(live) != 1:
            return None
        return live[0][len(self._written) :]

    def close(self) -> None:
        """Nothing native to free (the `SequenceSampler` interface)."""
