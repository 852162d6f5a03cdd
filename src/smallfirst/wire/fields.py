"""Every chat request field, and what the gateway does with it.

A field is honoured on every path, kept as metadata (it never changes the answer), or
forwarded as is to an OpenAI-compatible upstream, which honours it; on any other path (the
embedded model, Anthropic, a cascade, a replay model) a forwarded-only field would be
dropped, which would change what the request means, so it is a 400 naming the field.
The README's field table is checked against this module by a test.
"""

from __future__ import annotations

from typing import Any

from smallfirst.errors import InvalidRequestError

HONOURED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "stream",
        "stream_options",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
    }
)
"""On every path (`n` only as 1: more choices are a 400)."""

METADATA = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
    | {"prompt_cache_options", "prompt_cache_retention"}
)
"""Accepted everywhere; they label or bill the request and never change the answer (an
OpenAI-compatible upstream receives them too)."""

FORWARDED = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "reasoning_effort",
        "verbosity",
        "web_search_options",
        "functions",
        "function_call",
        "moderation",
    }
)
"""Honoured by an OpenAI-compatible upstream reached by pass-through; a 400 elsewhere."""

COMPLETION_HONOURED = frozenset(
    {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream"}
    | {"stream_options", "logprobs"}
)
"""`/v1/completions` on every path (`echo`, `suffix`, `best_of`, ... only by pass-through)."""


def refuse_unforwardable(
    data: dict[str, Any], model: str, honoured: frozenset[str] = HONOURED
) -> None:
    """The 400 for a field only pass-through can honour, on a path without pass-through."""
    for name in data:
        if name not in honoured and name not in METADATA:
            kind = "is only honoured" if name in FORWARDED else "is unknown here; it would be sent"
            raise InvalidRequestError(
                f"{name} {kind} by pass-through to an OpenAI-compatible model, and this request "
                f"is answered by {model!r}, which cannot honour it: send it to such a model, or "
                f"leave {name} out",
                param=name,
            )
