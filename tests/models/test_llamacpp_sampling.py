"""The greedy shortcuts answer exactly as llama.cpp's sampler chain does: with a grammar (check
only the most likely token), whether the grammar allows that token or refuses it, and without
one (an argmax over the logits row instead of the chain's pass over the vocabulary)."""

import pytest

from smallfirst.config import ModelConfig
from smallfirst.models.llamacpp import LlamaCppProvider
from smallfirst.models.llamacpp_sampling import SequenceSampler
from smallfirst.types import CompletionRequest, GenerationParams

LABELS = 'root ::= " card_arrival" | " card_linking" | " exchange_rate" | " pin_blocked"'
REQUESTS = [
    # the model's own first choice is one the grammar allows (shortcut taken)
    CompletionRequest(
        "Message: my new card has not come yet\nIntent:",
        GenerationParams(max_tokens=8, temperature=0.0, grammar=LABELS),
    ),
    # the grammar refuses what the model would say (full pass needed)
    CompletionRequest(
        "The capital of France is",
        GenerationParams(max_tokens=4, temperature=0.0, grammar="root ::= [0-9] [0-9]"),
    ),
]
PLAIN = [
    CompletionRequest(prompt, GenerationParams(max_tokens=24, temperature=0.0))
    for prompt in ("The capital of France is", "Write a haiku about the sea:", "1, 2, 3,")
]


async def answers(requests: list[CompletionRequest]) -> list[tuple[str, str | None]]:
    provider = LlamaCppProvider(ModelConfig(name="sampling", backend="llamacpp", slots=1))
    try:
        return [
            (result.text, result.finish_reason)
            for result in [await provider.complete(request) for request in requests]
        ]
    finally:
        await provider.aclose()


def chain_only(sampler: SequenceSampler, ctx, batch_index: int) -> int:
    """What the sampler did before the shortcuts: llama.cpp's chain over the whole vocabulary."""
    return int(sampler._lib.llama_sampler_sample(sampler.chain, ctx, batch_index))


async def test_greedy_shortcut_matches_the_full_grammar_pass(
    embedded_model_path, monkeypatch: pytest.MonkeyPatch
):
    outcomes = {"allowed": 0, "refused": 0}
    check = SequenceSampler._allowed

    def counted(self, token, ctx, batch_index):
        allowed = check(self, token, ctx, batch_index)
        outcomes["allowed" if allowed else "refused"] += 1
        return allowed

    monkeypatch.setattr(SequenceSampler, "_allowed", counted)
    fast = await answers(REQUESTS)
    assert outcomes["allowed"] > 0 and outcomes["refused"] > 0

    monkeypatch.setattr(SequenceSampler, "sample", chain_only)
    assert await answers(REQUESTS) == fast
    assert fast[0][0].strip() in {"card_arrival", "card_linking", "exchange_rate", "pin_blocked"}
    assert fast[1][0].isdigit() and len(fast[1][0]) == 2


async def test_greedy_argmax_matches_the_sampler_chain(
    embedded_model_path, monkeypatch: pytest.MonkeyPatch
):
    taken = []
    argmax = SequenceSampler._argmax

    def counted(self, ctx, batch_index):
        taken.append(argmax(self, ctx, batch_index))
        return taken[-1]

    monkeypatch.setattr(SequenceSampler, "_argmax", counted)
    fast = await answers(PLAIN)
    assert len(taken) >= len(PLAIN) * 8  # every step took the shortcut

    monkeypatch.setattr(SequenceSampler, "sample", chain_only)
    assert await answers(PLAIN) == fast
    assert all(text for text, _ in fast)
