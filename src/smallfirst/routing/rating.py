"""The naive baseline: ask the small local model how hard the request is (1-5).

One forward pass of the embedded model over a few-shot prompt; the rating is the expected
value of its next-token distribution over the digits 1-5. Requests rated at or above the
threshold (default 3) go to the large model. Cheap to set up, needs no training data, and is
the number a learned router has to beat.

    routers:
      auto: {kind: rating, threshold: 3, small: gemma-3-270m, large: gpt-4o}
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import numpy as np

from smallfirst.config import ModelConfig, RatingRouterConfig
from smallfirst.errors import ModelLoadError, ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import RouteDecision, register_router_kind
from smallfirst.routing.features import user_turns
from smallfirst.routing.specs import find_spec
from smallfirst.types import Message

MAX_REQUEST_CHARS = 1200
PROMPT = """Rate how difficult each request is for an AI assistant, from 1 (trivial) to 5 (expert).

Request: What is the capital of France?
Difficulty: 1

Request: Write a haiku about autumn.
Difficulty: 2

Request: Explain the difference between TCP and UDP with examples.
Difficulty: 3

Request: Implement a thread-safe LRU cache in C++ with O(1) operations.
Difficulty: 4

Request: Prove that every bounded monotone sequence of real numbers converges.
Difficulty: 5

Request: {request}
Difficulty:"""


class DifficultyRater:
    """Owns one llama.cpp context (not thread-safe, hence the lock)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self._llama: Any = None
        self._digits: list[tuple[int, float]] = []
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            from smallfirst.models.llamacpp import (
                close_at_exit,
                no_weight_repacking,
                resolve_model_path,
            )

            path = resolve_model_path(self.config)
            try:
                with no_weight_repacking():
                    self._llama = close_at_exit(
                        Llama(
                            model_path=str(path),
                            n_ctx=1024,
                            n_batch=512,
                            n_threads=self.config.threads,
                            verbose=False,
                        )
                    )
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"rating router: cannot load {path}: {exc}") from exc
            self._digits = self._digit_tokens(self._llama)
        return self._llama

    @staticmethod
    def _digit_tokens(llama: Any) -> list[tuple[int, float]]:
        """Token ids that spell a rating right after "Difficulty:" (with or without a space)."""
        found = []
        for value in range(1, 6):
            for text in (f" {value}", str(value)):
                ids = llama.tokenize(text.encode(), add_bos=False, special=False)
                if len(ids) == 1:
                    found.append((ids[0], float(value)))
        return found

    def rate(self, text: str) -> float:
        """Expected difficulty 1..5 under the model's next-token distribution."""
        import llama_cpp

        request = " ".join(text.split())[-MAX_REQUEST_CHARS:]
        with self._lock:
            llama = self._load()
            tokens = llama.tokenize(PROMPT.format(request=request).encode(), add_bos=True)
            _eval_reusing_prefix(llama, tokens)
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),)
            )
            chosen = np.array([logits[i] for i, _ in self._digits], dtype=np.float64)
        weights = np.exp(chosen - chosen.max())
        values = np.array([v for _, v in self._digits])
        return float((weights * values).sum() / weights.sum())


def _eval_reusing_prefix(llama: Any, tokens: list[int]) -> None:
    """Evaluate only what differs from the last prompt: the few-shot part stays cached."""
    previous = llama.input_ids[: llama.n_tokens]
    common = 0
    for a, b in zip(previous, tokens, strict=False):
        if a != b:
            break
        common += 1
    llama.n_tokens = min(common, len(tokens) - 1)
    llama.eval(tokens[llama.n_tokens :])


@lru_cache(maxsize=4)
def _rater(config_json: str) -> DifficultyRater:
    return DifficultyRater(ModelConfig.model_validate_json(config_json))


class RatingRouter:
    def __init__(self, name: str, rater: DifficultyRater, small: str, large: str, threshold: float):
        self.name = name
        self.rater = rater
        self.small = small
        self.large = large
        self.threshold = threshold

    def decide(self, messages: list[Message]) -> RouteDecision:
        rating = self.rater.rate(user_turns(messages)[-1])
        model = self.large if rating >= self.threshold else self.small
        sign = ">=" if model == self.large else "<"
        return RouteDecision(
            model,
            self.name,
            f"rating: {self.rater.config.name} rates difficulty {rating:.2f}/5 {sign} "
            f"{self.threshold:g} -> {model}",
            rating,
        )


def build_rating(name: str, threshold: str | None, registry: Registry) -> RatingRouter:
    spec = find_spec(name, "rating", registry)
    if not isinstance(spec, RatingRouterConfig):
        spec = RatingRouterConfig(kind="rating")
    rater_name = spec.rater or next(
        (e.name for e in registry.by_tier() if e.capabilities.embedded), None
    )
    if rater_name is None or not registry.get(rater_name).capabilities.embedded:
        raise ModelNotFoundError(
            f"router {name!r}: the rating router needs a local llama.cpp model (one whose "
            "capabilities say `embedded`) as `rater`",
            param="model",
        )
    small = registry.get(spec.small or registry.default_model).name
    large = registry.get(spec.large or registry.baseline_model).name
    text = threshold if threshold is not None else spec.threshold
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ModelNotFoundError(
            f"{name!r}: threshold {text!r} is not a number (e.g. router-rating-3)", param="model"
        ) from None
    rater = _rater(registry.get(rater_name).config.model_dump_json())
    return RatingRouter(name, rater, small, large, value)


register_router_kind("rating", build_rating)
