"""OpenAI request bodies as we send them upstream, built from our request types."""

from __future__ import annotations

from typing import Any

from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams


def chat_body(
    model: str, request: ChatRequest, stream: bool, grammar: str | None = None
) -> dict[str, Any]:
    """`grammar`: GBNF for a server that takes one (models/openai.py `grammar_of`)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.to_openai() for m in request.messages],
        **params_body(request.params),
    }
    if grammar is not None:
        body["grammar"] = grammar
    return _streamed(body) if stream else body


def completion_body(
    model: str, request: CompletionRequest, stream: bool, grammar: str | None = None
) -> dict[str, Any]:
    """A completion held to JSON keeps its `response_format`, but the OpenAI-compatible
    provider sends one as chat, where servers honour it (models/openai.py `_held_as_chat`)."""
    body: dict[str, Any] = {"model": model, "prompt": request.prompt, **params_body(request.params)}
    if request.params.max_tokens is not None:  # completions know only this name
        body.pop("max_completion_tokens", None)
        body["max_tokens"] = request.params.max_tokens
    if request.params.logprobs:
        body["logprobs"] = request.params.top_logprobs or 0
    if grammar is not None:
        body["grammar"] = grammar
    return _streamed(body) if stream else body


def params_body(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if params.max_tokens is not None:
        body[params.max_tokens_name] = params.max_tokens
    for key in ("temperature", "top_p", "stop", "seed"):
        value = getattr(params, key)
        if value is not None:
            body[key] = value
    if params.logprobs:
        body["logprobs"] = True
        if params.top_logprobs:
            body["top_logprobs"] = params.top_logprobs
    if params.tools:
        body["tools"] = [tool.to_openai() for tool in params.tools]
    if params.tool_choice is not None:
        body["tool_choice"] = params.tool_choice
    if params.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = params.parallel_tool_calls
    if params.json_object:
        body["response_format"] = {"type": "json_object"}
    elif params.json_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": schema_spec(params)}
    return body


def schema_spec(params: GenerationParams) -> dict[str, Any]:
    """`response_format.json_schema` with the name, description and `strict` the client
    gave (a default `strict: true` would refuse a schema that is not in strict form, and make
    a best-effort request a hard one)."""
    spec: dict[str, Any] = {"name": params.json_schema_name or "output"}
    if params.json_schema_description is not None:
        spec["description"] = params.json_schema_description
    spec["schema"] = params.json_schema
    if params.json_schema_strict is not None:
        spec["strict"] = params.json_schema_strict
    return spec


def _streamed(body: dict[str, Any]) -> dict[str, Any]:
    """Streams always ask for usage: the ledger needs the tokens."""
    return {**body, "stream": True, "stream_options": {"include_usage": True}}
