"""Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp server, TGI, hosted APIs.

One pooled httpx client per model; the API key is read from the named environment variable
on first use, never at import.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from smallfirst.config import ModelConfig
from smallfirst.errors import AuthenticationError, InvalidRequestError, UpstreamError
from smallfirst.models.capabilities import capabilities_of
from smallfirst.models.http_errors import error_for_exception, error_for_status
from smallfirst.models.llamacpp_choice import choices_grammar
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    Message,
)
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.parse import first_choice, parse_embeddings, parse_logprobs, parse_usage
from smallfirst.wire.requests import chat_body, completion_body
from smallfirst.wire.sse import sse_events
from smallfirst.wire.tool_calls import parse_tool_calls


def read_api_key(config: ModelConfig) -> str | None:
    if not config.api_key_env:
        return None
    key = os.environ.get(config.api_key_env)
    if not key:
        raise AuthenticationError(
            f"model {config.name!r} needs an API key: set the environment variable "
            f"{config.api_key_env}"
        )
    return key


def grammar_of(params: GenerationParams, model: str, takes_grammar: bool) -> str | None:
    """The GBNF that `grammar` or `choices` comes to, for an OpenAI-compatible server that
    takes one in its `grammar` field (llama.cpp's server, declared `grammar: true`); None when
    the request has neither. Any other server would ignore the field, so there either is a
    400 naming it, as is combining it with another constraint (one grammar holds at a time)."""
    given = [name for name in ("choices", "grammar") if getattr(params, name) is not None]
    if not given:
        return None
    field = given[0]
    if not takes_grammar:
        raise InvalidRequestError(
            f"{field} needs a model that takes a grammar; {model!r} (OpenAI-compatible) does "
            "not declare it (declare `capabilities: {grammar: true}` for a llama.cpp server, "
            f"which takes it in its `grammar` field), or leave {field} out",
            param=field,
        )
    if len(given) > 1 or params.json_schema is not None or params.json_object:
        other = given[1] if len(given) > 1 else "response_format"
        raise InvalidRequestError(f"{field} and {other} cannot be combined: give one", param=other)
    if params.grammar is not None:
        return params.grammar
    if not params.choices:
        raise InvalidRequestError("choices is empty: give at least one string", param="choices")
    return choices_grammar(params.choices)


class OpenAIProvider:
    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self.config = config
        self.upstream_model = config.upstream_model or config.name
        self.base_url = (config.base_url or "").rstrip("/")
        capabilities = capabilities_of(config)
        self.takes_grammar = capabilities.grammar
        """Declared `grammar: true`: a llama.cpp server, sent `grammar` / `choices` as GBNF."""
        self.holds_schema = capabilities.json_schema
        """Takes `response_format` json_schema on chat (chat-style by default)."""
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {}
            key = read_api_key(self.config)
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(
                    self.config.timeout_s, connect=min(10.0, self.config.timeout_s)
                ),
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post(path, json=body)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        if response.status_code >= 400:
            raise error_for_status(self.name, response)
        try:
            data = response.json()
        except ValueError:
            raise UpstreamError(
                f"upstream model {self.name!r} returned malformed JSON: {response.text[:200]!r}"
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError(f"upstream model {self.name!r} returned unexpected JSON")
        return data

    async def chat(self, request: ChatRequest) -> Generation:
        started = time.perf_counter()
        body = self._chat_body(request, False)
        data = await self._post("/chat/completions", body)
        choice = first_choice(data, self.name)
        message = choice.get("message") or {}
        return Generation(
            text=message.get("content") or "",
            model=self.name,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=parse_usage(data.get("usage"), self.name),
            logprobs=parse_logprobs(choice.get("logprobs")),
            latency_s=time.perf_counter() - started,
            tool_calls=parse_tool_calls(message.get("tool_calls"), self.name),
            refusal=message.get("refusal"),
        )

    async def complete(self, request: CompletionRequest) -> Generation:
        held = self._held_as_chat(request)
        if held is not None:
            return await self.chat(held)
        started = time.perf_counter()
        body = self._completion_body(request, False)
        data = await self._post("/completions", body)
        choice = first_choice(data, self.name)
        return Generation(
            text=choice.get("text") or "",
            model=self.name,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=parse_usage(data.get("usage"), self.name),
            logprobs=parse_logprobs(choice.get("logprobs")),
            latency_s=time.perf_counter() - started,
        )

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        return self._stream("/chat/completions", self._chat_body(request, True))

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        held = self._held_as_chat(request)
        if held is not None:
            return self.stream_chat(held)
        return self._stream("/completions", self._completion_body(request, True))

    def _held_as_chat(self, request: CompletionRequest) -> ChatRequest | None:
        """A completion held to JSON (`json_schema` / `json_object`), as the chat request it
        goes up as: OpenAI's `/completions` has no `response_format` (llama.cpp's and others
        ignore it there), so on an OpenAI-compatible server structured output is a chat
        feature, and the prompt is the one user turn. A model that does not declare
        `json_schema` (a completion-style one) is a 400 naming the field instead; None when
        the request is not held to JSON."""
        params = request.params
        if params.json_schema is None and not params.json_object:
            return None
        if not self.holds_schema:
            raise InvalidRequestError(
                f"response_format needs a model that takes structured output on chat; "
                f"{self.name!r} (OpenAI-compatible) does not declare json_schema (a "
                "completion-style model does not by default: declare `capabilities: "
                "{json_schema: true}` for a server that takes it on chat), or leave "
                "response_format out",
                param="response_format",
            )
        return ChatRequest([Message("user", request.prompt)], params, task=request.task)

    def _chat_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        grammar = grammar_of(request.params, self.name, self.takes_grammar)
        return chat_body(self.upstream_model, request, stream, grammar)

    def _completion_body(self, request: CompletionRequest, stream: bool) -> dict[str, Any]:
        grammar = grammar_of(request.params, self.name, self.takes_grammar)
        return completion_body(self.upstream_model, request, stream, grammar)

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[Delta]:
        collector = StreamCollector(self.name)
        try:
            async with self.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for_status(self.name, response)
                async for _event, data in sse_events(response):
                    for piece in collector.add_data(data):
                        yield piece
                    if collector.error is not None:
                        raise UpstreamError(
                            f"upstream model {self.name!r} failed mid-stream: {collector.error}"
                        )
                    if collector.done:
                        break
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        yield Delta(finish_reason=collector.finish_reason or "stop", usage=collector.usage())

    async def embed(self, texts: list[str]) -> list[list[float]]:
        data = await self._post("/embeddings", {"model": self.upstream_model, "input": texts})
        return parse_embeddings(data, self.name)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
