"""The naive baseline: the embedded model rates difficulty (one real forward pass)."""

from __future__ import annotations

import pytest

from smallfirst.config import parse_config
from smallfirst.errors import ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import resolve_router
from smallfirst.types import Message

MODELS = """
models:
  - {name: local, backend: llamacpp}
  - {name: big, backend: openai, base_url: http://127.0.0.1:9/v1, tier: large}
"""


@pytest.mark.slow
def test_rating_router_scores_with_the_local_model(embedded_model_path: str) -> None:
    registry = Registry(parse_config(MODELS))
    low = resolve_router("router-rating-0", registry)
    decision = low.decide([Message("user", "What is the capital of France?")])
    assert 1.0 <= decision.score <= 5.0
    assert decision.model == "big" and "rates difficulty" in decision.reason
    high = resolve_router("router-rating-5.5", registry)
    assert high.decide([Message("user", "What is the capital of France?")]).model == "local"


def test_rating_router_config_errors() -> None:
    registry = Registry(parse_config(MODELS))
    with pytest.raises(ModelNotFoundError, match="not a number"):
        resolve_router("router-rating-high", registry)
    remote_only = Registry(
        parse_config("models:\n  - {name: big, backend: openai, base_url: http://127.0.0.1:9/v1}\n")
    )
    with pytest.raises(ModelNotFoundError, match=r"needs a local llama\.cpp model"):
        resolve_router("router-rating-3", remote_only)
