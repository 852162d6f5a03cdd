"""Scoring continuations agrees with the log-probabilities of greedy generation."""

import pytest

from smallfirst.types import CompletionRequest, GenerationParams


async def test_score_matches_generated_logprobs(embedded_registry):
    provider = embedded_registry.provider("gemma-3-270m")
    prompt = "The capital of France is"
    generated = await provider.complete(
        CompletionRequest(prompt, GenerationParams(max_tokens=2, logprobs=True))
    )
    expected = sum(t.logprob for t in generated.logprobs)
    scores = await provider.score_continuations(prompt, [generated.text, " Zorglub"])
    # batched and token-by-token decoding use different quantized kernels: close, not equal
    assert scores[0] == pytest.approx(expected, abs=0.15)
    assert scores[1] < scores[0]
    again = await provider.score_continuations(prompt, [generated.text])  # cached prefix
    assert again[0] == pytest.approx(scores[0], abs=1e-3)
    await embedded_registry.aclose()
