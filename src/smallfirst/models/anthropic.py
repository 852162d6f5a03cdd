"""Anthropic's Messages API, translated to and from our chat types over plain httpx."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from smallfirst.config import ModelConfig
from smallfirst.errors import AuthenticationError, UpstreamError
from smallfirst.models.http_errors import error_for_exception, error_for_status
from smallfirst.models.usage import token_count, usage_object
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Generation, Message, Usage
from smallfirst.wire.sse import sse_events

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def messages_body(model: str, request: ChatRequest, stream: bool) -> dict[str, Any]:
    """System messages go to `system`; consecutive same-role turns are merged (Anthropic requires
    alternation)."""
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": role, "content": message.content})
    params = request.params
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = system
    if params.temperature is not None:
        body["temperature"] = min(1.0, params.temperature)
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop_sequences"] = params.stop
    if params.json_schema is not None:
        body["output_format"] = {"type": "json_schema", "schema": params.json_schema}
    if stream:
        body["stream"] = True
    return body


class AnthropicProvider:
    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self.config = config
        self.upstream_model = config.upstream_model or config.name
        self.base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            env = self.config.api_key_env or "ANTHROPIC_API_KEY"
            key = os.environ.get(env)
            if not key:
                raise AuthenticationError(
                    f"model {self.name!r} needs an API key: set the environment variable {env}"
                )
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"x-api-key": key, "anthropic-version": API_VERSION},
                timeout=httpx.Timeout(
                    self.config.timeout_s, connect=min(10.0, self.config.timeout_s)
                ),
            )
        return self._client

    async def chat(self, request: ChatRequest) -> Generation:
        started = time.perf_counter()
        body = messages_body(self.upstream_model, request, stream=False)
        try:
            response = await self.client.post("/v1/messages", json=body)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        if response.status_code >= 400:
            raise error_for_status(self.name, response)
        try:
            data = response.json()
            text = "".join(
                block.get("text", "") for block in data["content"] if block.get("type") == "text"
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamError(f"upstream model {self.name!r} returned malformed JSON") from None
        usage = usage_object(data.get("usage"), self.name)
        return Generation(
            text=text,
            model=self.name,
            finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
            usage=Usage(
                token_count(usage, "input_tokens", self.name),
                token_count(usage, "output_tokens", self.name),
            ),
            latency_s=time.perf_counter() - started,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        body = messages_body(self.upstream_model, request, stream=True)
        usage, finish = Usage(), "stop"
        try:
            async with self.client.stream("POST", "/v1/messages", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for_status(self.name, response)
                async for event, data in sse_events(response):
                    try:
                        payload = json.loads(data)
                    except ValueError:
                        raise UpstreamError(
                            f"upstream model {self.name!r} sent a malformed stream event"
                        ) from None
                    if event == "error":
                        raise UpstreamError(f"upstream model {self.name!r} failed: {payload}")
                    if event == "message_start":
                        message = payload.get("message", {})
                        start_usage = usage_object(message.get("usage"), self.name)
                        usage.input_tokens = token_count(start_usage, "input_tokens", self.name)
                    elif event == "content_block_delta":
                        text = payload.get("delta", {}).get("text")
                        if text:
                            yield Delta(text=text)
                    elif event == "message_delta":
                        delta_usage = usage_object(payload.get("usage"), self.name)
                        usage.output_tokens = token_count(delta_usage, "output_tokens", self.name)
                        reason = payload.get("delta", {}).get("stop_reason")
                        finish = STOP_REASONS.get(reason or "", finish)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        yield Delta(finish_reason=finish, usage=usage)

    async def complete(self, request: CompletionRequest) -> Generation:
        """Anthropic has no raw completion endpoint; the prompt becomes one user turn."""
        return await self.chat(as_chat(request))

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self.stream_chat(as_chat(request))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise UpstreamError(f"model {self.name!r} (Anthropic) does not serve embeddings")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def as_chat(request: CompletionRequest) -> ChatRequest:
    return ChatRequest(messages=[Message("user", request.prompt)], params=request.params)
