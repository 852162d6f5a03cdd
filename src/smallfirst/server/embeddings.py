"""`POST /v1/embeddings`: local MiniLM by default, or a configured OpenAI-compatible model."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from smallfirst.config import ModelConfig, Price
from smallfirst.embeddings import MINILM_DIM, get_embedder
from smallfirst.errors import InvalidRequestError
from smallfirst.models.pricing import ModelPrice
from smallfirst.models.registry import ModelEntry
from smallfirst.server.call import estimate_tokens
from smallfirst.server.chat import json_response, start_call
from smallfirst.types import ChatRequest, Usage
from smallfirst.wire.render import embeddings_json
from smallfirst.wire.schemas import EmbeddingBody, validate

LOCAL_NAMES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MAX_INPUTS = 2048


def local_entry() -> ModelEntry:
    """MiniLM as a model entry so the ledger and metrics treat it like any other model."""
    config = ModelConfig(
        name="minilm", backend="llamacpp", tier="tiny", price=Price(input=0, output=0)
    )
    return ModelEntry(config, ModelPrice(0.0, 0.0, "local"))


async def embeddings(request: Request) -> Response:
    gateway, call, data = await start_call(request, "embeddings")
    body = validate(EmbeddingBody, data)
    texts = body.texts
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"at most {MAX_INPUTS} inputs per request", param="input")
    call.entry.requested_model = body.model
    chars = sum(len(t) for t in texts)
    vectors: np.ndarray | list[list[float]]
    if body.model in LOCAL_NAMES:
        call.routed(local_entry(), None)
        await call.admit(chars, 1)
        vectors = await asyncio.to_thread(get_embedder("minilm").encode, texts)
    else:
        await gateway.route(call, gateway.resolve(call, body.model), ChatRequest([]))
        await call.admit(chars, 1)
        vectors = await gateway.registry.provider(call.entry.model or "").embed(texts)
    usage = Usage(input_tokens=sum(estimate_tokens(len(t)) for t in texts))
    call.succeed(usage)
    encode = _base64 if body.encoding_format == "base64" else _floats
    encoded = [encode(vector) for vector in vectors]
    return json_response(embeddings_json(encoded, call.entry.model, usage.input_tokens), call)


def _floats(vector: Sequence[float]) -> list[float]:
    return vector.tolist() if isinstance(vector, np.ndarray) else list(vector)


def _base64(vector: Sequence[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32, base64 (what its SDK asks)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def local_model_card() -> dict[str, object]:
    return {"id": "minilm", "object": "model", "owned_by": "smallfirst", "dimensions": MINILM_DIM}
