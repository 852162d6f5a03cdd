"""Requests decoded together in one llama.cpp batch answer exactly as they do alone."""

import asyncio

from smallfirst.config import ModelConfig
from smallfirst.models.llamacpp import LlamaCppProvider
from smallfirst.types import CompletionRequest, GenerationParams

DIGITS = "root ::= [0-9] [0-9] [0-9]"
YES_NO = 'root ::= "yes" | "no"'
WORD = "root ::= [a-z]+"

REQUESTS = [
    CompletionRequest("Count: 1, 2, 3,", GenerationParams(max_tokens=6, seed=1)),
    CompletionRequest("The capital of France is", GenerationParams(max_tokens=9, stop=["."])),
    CompletionRequest("A number:", GenerationParams(max_tokens=5, grammar=DIGITS)),
    CompletionRequest("Is water wet? Answer:", GenerationParams(max_tokens=4, grammar=YES_NO)),
    CompletionRequest("My favourite colour is", GenerationParams(max_tokens=7, grammar=WORD)),
    CompletionRequest("Once upon a time", GenerationParams(max_tokens=12, stop=[" the", ","])),
    CompletionRequest(
        "One, two,", GenerationParams(max_tokens=3, logprobs=True, top_logprobs=2, seed=7)
    ),
    CompletionRequest("def add(a, b):", GenerationParams(max_tokens=10, stop=["\n\n"])),
    CompletionRequest(
        "Message: where is my new card?\nIntent:",
        GenerationParams(max_tokens=8, logprobs=True, choices=[" card_arrival", " card_linking"]),
    ),
]


def provider(slots: int) -> LlamaCppProvider:
    return LlamaCppProvider(ModelConfig(name="batched", backend="llamacpp", slots=slots))


def answer(result) -> tuple:
    logprobs = [round(t.logprob, 3) for t in result.logprobs] if result.logprobs else None
    usage = result.usage.output_tokens
    return result.text, result.finish_reason, usage, logprobs


async def test_concurrent_requests_answer_as_they_do_alone(embedded_model_path):
    alone = provider(slots=1)
    expected = [answer(await alone.complete(request)) for request in REQUESTS]
    await alone.aclose()

    together = provider(slots=4)  # 8 requests on 4 slots: each freed slot is refilled
    results = await asyncio.gather(*(together.complete(request) for request in REQUESTS))
    await together.aclose()

    assert [answer(r) for r in results] == expected
    assert expected[2][0].isdigit() and expected[3][0] in ("yes", "no")
    assert expected[0][2] == 6 and expected[0][1] == "length"


async def test_cancelled_stream_frees_its_slot(embedded_model_path):
    engine = provider(slots=1)
    stream = engine.stream_complete(
        CompletionRequest("Once upon a time", GenerationParams(max_tokens=400))
    )
    async for _ in stream:
        break
    await stream.aclose()
    result = await asyncio.wait_for(
        engine.complete(CompletionRequest("Hi", GenerationParams(max_tokens=3))), 120
    )
    assert result.usage.output_tokens == 3
    await engine.aclose()


async def test_shared_prefix_is_not_evaluated_again(embedded_model_path):
    engine = provider(slots=2)
    instructions = "Classify the message into one of: billing, delivery, refund, other.\n" * 8
    first = await engine.complete(
        CompletionRequest(instructions + "Message: where is my parcel?\nLabel:", _short())
    )
    before = engine._engine.evaluated
    second = await engine.complete(
        CompletionRequest(instructions + "Message: I was charged twice\nLabel:", _short())
    )
    fresh = provider(slots=1)
    alone = await fresh.complete(
        CompletionRequest(instructions + "Message: I was charged twice\nLabel:", _short())
    )
    await fresh.aclose()

    prompt_size = second.usage.input_tokens
    assert engine._engine.evaluated - before < prompt_size // 3  # only the varying tail
    assert second.text == alone.text and first.usage.output_tokens >= 1
    await engine.aclose()


def _short() -> GenerationParams:
    return GenerationParams(max_tokens=2)
