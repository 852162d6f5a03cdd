"""The small model's first-token confidence: the features and a real run on the embedded model."""

from __future__ import annotations

import math

import numpy as np

from smallfirst.routing.small_model_signals import (
    SIGNAL_NAMES,
    TOP_K,
    first_token_features,
    first_token_signals,
)


def test_a_sure_first_token_scores_above_a_flat_one() -> None:
    sure = first_token_features({"A": -0.01, "B": -5.0, "C": -6.0}, -0.01)
    flat = first_token_features({"A": -1.1, "B": -1.1, "C": -1.1}, -1.1)
    assert sure[0] > flat[0] and sure[1] > flat[1] and sure[2] < flat[2]
    assert abs(flat[2] - math.log(3)) < 1e-9
    assert first_token_features({}, -0.5) == [-0.5, 10.0, 0.0]  # no top list: one token known


async def test_signals_come_from_the_embedded_model(embedded_registry) -> None:
    provider = embedded_registry.provider("gemma-3-270m")
    prompts = ["What is the capital of France?", "x" * 5000]  # the long one keeps its end
    rows = await first_token_signals(provider, prompts)
    assert rows.shape == (2, len(SIGNAL_NAMES)) and np.isfinite(rows).all()
    assert (rows[:, 0] <= 0).all() and (rows[:, 1] >= 0).all()
    assert (rows[:, 2] >= 0).all() and (rows[:, 2] <= math.log(TOP_K) + 1e-9).all()
    await embedded_registry.aclose()
