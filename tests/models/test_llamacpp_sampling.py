"""The greedy grammar shortcut (check only the most likely token) answers exactly as the full
pass over the vocabulary does, whether the grammar allows that token or refuses it."""

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


async def answers() -> list[tuple[str, str | None]]:
    provider = LlamaCppProvider(ModelConfig(name="sampling", backend="llamacpp", slots=1))
    try:
        return [
            (result.text, result.finish_reason)
            for result in [await provider.complete(request) for request in REQUESTS]
        ]
    finally:
        await provider.aclose()


async def test_greedy_shortcut_matches_the_full_grammar_pass(
    embedded_model_path, monkeypatch: pytest.MonkeyPatch
):
    outcomes = {"allowed": 0, "refused": 0}
    shortcut = SequenceSampler._allowed_argmax

    def counted(self, ctx, batch_index):
        token = shortcut(self, ctx, batch_index)
        outcomes["allowed" if token is not None else "refused"] += 1
        return token

    monkeypatch.setattr(SequenceSampler, "_allowed_argmax", counted)
    fast = await answers()
    assert outcomes["allowed"] > 0 and outcomes["refused"] > 0

    monkeypatch.setattr(SequenceSampler, "_allowed_argmax", lambda *_: None)  # full pass only
    assert await answers() == fast
    assert fast[0][0].strip() in {"card_arrival", "card_linking", "exchange_rate", "pin_blocked"}
    assert fast[1][0].isdigit() and len(fast[1][0]) == 2
