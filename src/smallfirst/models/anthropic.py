"""Anthropic's Messages API as a backend, over plain httpx (translation: anthropic_wire.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator

import httpx

from smallfirst.config import ModelConfig
from smallfirst.errors import AuthenticationError, UpstreamError
from smallfirst.models.anthropic_wire import StreamTranslator, messages_body, parse_message
from smallfirst.models.http_errors import error_for_exception, error_for_status
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Generation, Message
from smallfirst.wire.sse import sse_events

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"


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
        except ValueError:
            raise UpstreamError(f"upstream model {self.name!r} returned malformed JSON") from None
        generation = parse_message(data, self.name)
        generation.latency_s = time.perf_counter() - started
        return generation

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        body = messages_body(self.upstream_model, request, stream=True)
        translator = StreamTranslator(self.name)
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
                    for delta in translator.event(event, payload):
                        yield delta
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        yield translator.last()

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
