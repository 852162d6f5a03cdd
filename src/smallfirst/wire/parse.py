"""Reading OpenAI answers: usage, logprobs, the first choice, one stream chunk, embeddings.

Anything an upstream could get wrong is an UpstreamError (502) naming the model, never a
KeyError that would become a 500.
"""

from __future__ import annotations

from typing import Any

import orjson

from smallfirst.errors import UpstreamError
from smallfirst.models.usage import token_count, usage_object
from smallfirst.types import TokenLogprob, Usage


def parse_usage(raw: Any, model: str | None = None) -> Usage:
    """An OpenAI `usage` object; invalid counts are an UpstreamError (see `token_count`).
    `prompt_tokens_details.cached_tokens` are the prompt tokens read from the upstream's
    prompt cache (billed at the model's cached rate)."""
    usage = usage_object(raw, model)
    prompt = token_count(usage, "prompt_tokens", model)
    details = usage_object(usage.get("prompt_tokens_details"), model)
    cached = token_count(details, "cached_tokens", model)
    if cached > prompt:
        source = "the upstream" if model is None else f"upstream model {model!r}"
        raise UpstreamError(
            f"{source} reported {cached} cached of {prompt} prompt tokens "
            "(usage.prompt_tokens_details.cached_tokens are part of prompt_tokens)"
        )
    return Usage(
        input_tokens=prompt,
        output_tokens=token_count(usage, "completion_tokens", model),
        cached_input_tokens=cached,
    )


def parse_logprobs(raw: Any) -> list[TokenLogprob] | None:
    """Chat logprobs (`content: [...]`) or the legacy completions shape (`tokens`, ...)."""
    if not isinstance(raw, dict):
        return None
    items = raw.get("content")
    if isinstance(items, list):
        return [
            TokenLogprob(
                token=item.get("token", ""),
                logprob=float(item.get("logprob", 0.0)),
                top={t["token"]: float(t["logprob"]) for t in item.get("top_logprobs") or []}
                or None,
            )
            for item in items
        ]
    tokens, values = raw.get("tokens"), raw.get("token_logprobs")
    if isinstance(tokens, list) and isinstance(values, list):
        return [
            TokenLogprob(token=t, logprob=float(v or 0.0))
            for t, v in zip(tokens, values, strict=False)
        ]
    return None


def first_choice(answer: Any, model: str) -> dict[str, Any]:
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError(f"upstream model {model!r} returned no choices")
    return choices[0]


def parse_embeddings(answer: Any, model: str) -> list[list[float]]:
    """The vectors of an embeddings answer, in input order."""
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(item, dict) and isinstance(item.get("embedding"), list) for item in items
    ):
        raise UpstreamError(f"upstream model {model!r} returned no embeddings")
    return [item["embedding"] for item in sorted(items, key=lambda item: item.get("index", 0))]


def choice_text(choice: dict[str, Any]) -> str:
    """The text of a choice in any of its shapes: chat message, chat delta, completion."""
    message = choice.get("message")
    if isinstance(message, dict):
        return message.get("content") or ""
    delta = choice.get("delta")
    return choice.get("text") or (delta.get("content") if isinstance(delta, dict) else "") or ""


def decode_chunk(data: bytes | str, model: str | None) -> dict[str, Any]:
    """One stream event's data as a chunk object."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        source = "the upstream" if model is None else f"upstream model {model!r}"
        raise UpstreamError(f"{source} sent a malformed stream chunk: {data[:200]!r}")
    return chunk
