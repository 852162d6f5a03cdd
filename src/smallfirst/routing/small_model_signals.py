"""The small model's own view of a prompt: how sure it is of the first token of its answer.

A router can ask the embedded model before choosing (issue 22 names it as a candidate signal):
one prompt read and one decoded token, greedy, with the top log-probabilities of that token.
A model that is sure how to begin may be on familiar ground; a flat first-token distribution
may mean the prompt is beyond it. Whether that says anything about a *larger* pair of models
is an empirical question: `benchmarks/router_ood.py --small-signals` measures it out of
domain. The features are appended to the embedding like the prompt features are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from smallfirst.models.base import Provider
from smallfirst.types import CompletionRequest, GenerationParams

SIGNAL_NAMES = ("first-token log-probability", "top-two margin", "top-k entropy")
TOP_K = 10
CUE = "\n\nAnswer:"
"""Put after the prompt, so the next token is the start of an answer for every prompt kind."""
MAX_CHARS = 2000
"""Longer prompts keep their last characters (where the question usually is): bounded cost."""


def first_token_features(top: dict[str, float], chosen: float) -> list[float]:
    """The features of one answer's first token: its log-probability, its margin over the
    runner-up and the entropy of the top-k distribution renormalised."""
    values = sorted(top.values(), reverse=True) if top else [chosen]
    runner_up = values[1] if len(values) > 1 else values[0] - 10.0
    peak = values[0]
    weights = [math.exp(v - peak) for v in values]
    total = sum(weights)
    entropy = -sum(w / total * math.log(w / total) for w in weights if w > 0)
    return [chosen, values[0] - runner_up, entropy]


async def first_token_signals(provider: Provider, prompts: Sequence[str]) -> np.ndarray:
    """(n, len(SIGNAL_NAMES)) features, one row per prompt, asked one prompt at a time."""
    params = GenerationParams(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=TOP_K)
    rows = []
    for prompt in prompts:
        asked = prompt[-MAX_CHARS:] + CUE
        answer = await provider.complete(CompletionRequest(asked, params))
        token = answer.logprobs[0] if answer.logprobs else None
        if token is None:  # nothing decoded (the model stopped at once): as unsure as it gets
            rows.append([-20.0, 0.0, math.log(TOP_K)])
            continue
        rows.append(first_token_features(token.top or {}, token.logprob))
    return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(SIGNAL_NAMES))
