import asyncio
import json

import jsonschema
import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import ContextLengthError, ModelLoadError, SchemaError
from smallfirst.models.llamacpp import LlamaCppProvider
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message


def chat(text: str, **params) -> ChatRequest:
    return ChatRequest([Message("user", text)], GenerationParams(**params))


async def test_generates_text_with_usage(embedded_registry):
    provider = embedded_registry.provider("default")
    result = await provider.chat(chat("What is the capital of France?", max_tokens=12))
    assert result.text.strip()
    assert result.usage.input_tokens > 5
    assert 1 <= result.usage.output_tokens <= 12
    assert result.finish_reason in ("stop", "length")
    await embedded_registry.aclose()


async def test_max_tokens_limits_output(embedded_registry):
    provider = embedded_registry.provider("default")
    result = await provider.complete(
        CompletionRequest("Count: 1, 2, 3,", GenerationParams(max_tokens=4))
    )
    assert result.usage.output_tokens == 4
    assert result.finish_reason == "length"
    await embedded_registry.aclose()


async def test_streaming_yields_pieces_then_usage(embedded_registry):
    provider = embedded_registry.provider("default")
    deltas = [
        d
        async for d in provider.stream_complete(
            CompletionRequest("The sea is", GenerationParams(max_tokens=8))
        )
    ]
    assert len([d for d in deltas if d.text]) >= 2
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None and deltas[-1].usage.output_tokens == 8
    await embedded_registry.aclose()


async def test_logprobs_are_real_probabilities(embedded_registry):
    provider = embedded_registry.provider("default")
    result = await provider.complete(
        CompletionRequest(
            "One, two,", GenerationParams(max_tokens=3, logprobs=True, top_logprobs=3)
        )
    )
    assert result.logprobs is not None and len(result.logprobs) == 3
    for item in result.logprobs:
        assert item.logprob <= 0.0
        assert item.top is not None and len(item.top) == 3
        assert max(item.top.values()) >= item.logprob - 1e-6  # greedy picks the most likely
    await embedded_registry.aclose()


async def test_json_schema_output_parses_and_validates(embedded_registry):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "country": {"type": "string"},
            "population_millions": {"type": "number"},
        },
        "required": ["city", "country", "population_millions"],
        "additionalProperties": False,
    }
    provider = embedded_registry.provider("default")
    for question in ("Tell me about Paris.", "Describe Tokyo as JSON.", "hello"):
        result = await provider.chat(chat(question, max_tokens=80, json_schema=schema))
        jsonschema.validate(json.loads(result.text), schema)
    await embedded_registry.aclose()


async def test_enum_schema_restricts_to_labels(embedded_registry):
    schema = {"type": "string", "enum": ["positive", "negative", "neutral"]}
    provider = embedded_registry.provider("default")
    result = await provider.chat(chat("Sentiment of: 'I love this phone'", json_schema=schema))
    assert json.loads(result.text) in schema["enum"]
    await embedded_registry.aclose()


async def test_invalid_schema_is_a_clear_400(embedded_registry):
    provider = embedded_registry.provider("default")
    with pytest.raises(SchemaError) as caught:
        await provider.chat(chat("x", json_schema={"type": "object", "properties": 5}))
    assert caught.value.status == 400
    await embedded_registry.aclose()


async def test_concurrent_calls_queue_in_order_and_none_drop(embedded_registry):
    provider = embedded_registry.provider("default")
    finished: list[int] = []

    async def one(i: int):
        result = await provider.complete(
            CompletionRequest(f"Item {i}:", GenerationParams(max_tokens=3))
        )
        finished.append(i)
        return result

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert len(results) == 8
    assert all(r.usage.output_tokens == 3 for r in results)
    assert finished == list(range(8))  # one worker, first come first served
    await embedded_registry.aclose()


async def test_stream_cancelled_midway_frees_the_worker(embedded_registry):
    provider = embedded_registry.provider("default")
    stream = provider.stream_complete(
        CompletionRequest("Once upon a time", GenerationParams(max_tokens=200))
    )
    async for _ in stream:
        break
    await stream.aclose()
    result = await provider.complete(CompletionRequest("Hi", GenerationParams(max_tokens=2)))
    assert result.usage.output_tokens == 2
    await embedded_registry.aclose()


async def test_prompt_over_context_is_context_length_error(embedded_model_path):
    provider = LlamaCppProvider(ModelConfig(name="tiny-ctx", backend="llamacpp", context=256))
    with pytest.raises(ContextLengthError) as caught:
        await provider.complete(CompletionRequest("word " * 400))
    assert caught.value.status == 400 and "256" in caught.value.message
    await provider.aclose()


async def test_missing_gguf_is_a_clear_load_error(tmp_path):
    provider = LlamaCppProvider(
        ModelConfig(name="missing", backend="llamacpp", path=str(tmp_path / "nope.gguf"))
    )
    with pytest.raises(ModelLoadError, match="does not exist"):
        await provider.complete(CompletionRequest("x"))
    await provider.aclose()


async def test_hub_address_is_refused_not_downloaded():
    provider = LlamaCppProvider(
        ModelConfig(name="hub", backend="llamacpp", path="https://huggingface.co/x/y.gguf")
    )
    with pytest.raises(ModelLoadError, match="never downloads"):
        await provider.complete(CompletionRequest("x"))
    await provider.aclose()
