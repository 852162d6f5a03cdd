"""Scoring fixed continuations of a prompt on a loaded llama.cpp model (runs on its worker).

Used to classify by likelihood: with the prompt evaluated once, each candidate label costs one
small batched decode, and the result is the full distribution over the labels instead of one
sampled answer. The prompt prefix already in the KV cache (from a previous call with the same
instructions) is reused, as `Llama.generate` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def score_continuations(llama: Any, prompt: str, continuations: list[str]) -> list[float]:
    """Sum of token log-probabilities of each continuation after `prompt`."""
    prompt_tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    head, last = prompt_tokens[:-1], prompt_tokens[-1]
    _evaluate_prefix(llama, head)
    base = llama.n_tokens
    scores = []
    for text in continuations:
        tokens = llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        scores.append(_continuation_logprob(llama, base, last, tokens) if tokens else 0.0)
    return scores


def _evaluate_prefix(llama: Any, head: list[int]) -> None:
    """Put `head` in the KV cache, keeping the longest prefix already there."""
    cached = llama.input_ids[: llama.n_tokens].tolist()
    common = 0
    for old, new in zip(cached, head, strict=False):
        if old != new:
            break
        common += 1
    llama.n_tokens = common
    if head[common:]:
        llama.eval(head[common:])
    else:
        llama._ctx.kv_cache_seq_rm(-1, common, -1)


def _continuation_logprob(llama: Any, base: int, last: int, tokens: list[int]) -> float:
    """Decode [last prompt token, tokens[:-1]] after position `base` with logits for every
    position; row i predicts tokens[i]. The cache past `base` is dropped afterwards."""
    batch_tokens = [last, *tokens[:-1]]
    llama._ctx.kv_cache_seq_rm(-1, base, -1)
    llama._batch.set_batch(batch=batch_tokens, n_past=base, logits_all=True)
    llama._ctx.decode(llama._batch)
    n_vocab = llama.n_vocab()
    logits = np.ctypeslib.as_array(
        llama._ctx.get_logits(), shape=(len(batch_tokens) * n_vocab,)
    ).reshape(len(batch_tokens), n_vocab)
    peak = logits.max(axis=1, keepdims=True)
    log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    picked = logits[np.arange(len(tokens)), tokens]
    llama._ctx.kv_cache_seq_rm(-1, base, -1)
    return float((picked - log_norm).sum())
