"""Any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp server, TGI, hosted APIs.

One pooled httpx client per model; the API key is read from the named environment variable
on first use, never at import.
"""

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
from smallfirst.models.sse import sse_events
from smallfirst.models.usage import token_count, usage_object
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    TokenLogprob,
    Usage,
)


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


def params_body(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key in ("max_tokens", "temperature", "top_p", "stop", "seed"):
        value = getattr(params, key)
        if value is not None:
            body[key] = value
    if params.logprobs:
        body["logprobs"] = True
        if params.top_logprobs:
            body["top_logprobs"] = params.top_logprobs
    if params.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": params.json_schema, "strict": True},
        }
    return body


def parse_usage(raw: Any, model: str | None = None) -> Usage:
    """An OpenAI `usage` object; invalid counts are an UpstreamError (see `token_count`)."""
    usage = usage_object(raw, model)
    return Usage(
        input_tokens=token_count(usage, "prompt_tokens", model),
        output_tokens=token_count(usage, "completion_tokens", model),
    )


def parse_logprobs(raw: Any) -> list[TokenLogprob] | None:
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


class OpenAIProvider:
    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self.config = config
        self.upstream_model = config.upstream_model or config.name
        self.base_url = (config.base_url or "").rstrip("/")
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

    def _chat_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.upstream_model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            **params_body(request.params),
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _completion_body(self, request: CompletionRequest, stream: bool) -> dict[str, Any]:
        body = {
            "model": self.upstream_model,
            "prompt": request.prompt,
            **params_body(request.params),
        }
        body.pop("response_format", None)
        if request.params.logprobs:
            body["logprobs"] = request.params.top_logprobs or 0
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def chat(self, request: ChatRequest) -> Generation:
        started = time.perf_counter()
        data = await self._post("/chat/completions", self._chat_body(request, stream=False))
        choice = self._first_choice(data)
        message = choice.get("message") or {}
        return Generation(
            text=message.get("content") or "",
            model=self.name,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=parse_usage(data.get("usage"), self.name),
            logprobs=parse_logprobs(choice.get("logprobs")),
            latency_s=time.perf_counter() - started,
        )

    async def complete(self, request: CompletionRequest) -> Generation:
        started = time.perf_counter()
        data = await self._post("/completions", self._completion_body(request, stream=False))
        choice = self._first_choice(data)
        return Generation(
            text=choice.get("text") or "",
            model=self.name,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=parse_usage(data.get("usage"), self.name),
            logprobs=parse_logprobs(choice.get("logprobs")),
            latency_s=time.perf_counter() - started,
        )

    def _first_choice(self, data: dict[str, Any]) -> dict[str, Any]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise UpstreamError(f"upstream model {self.name!r} returned no choices")
        return choices[0]

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        return self._stream("/chat/completions", self._chat_body(request, stream=True), chat=True)

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self._stream("/completions", self._completion_body(request, stream=True), chat=False)

    async def _stream(self, path: str, body: dict[str, Any], chat: bool) -> AsyncIterator[Delta]:
        finish: str | None = None
        usage = Usage()
        try:
            async with self.client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for_status(self.name, response)
                async for _event, data in sse_events(response):
                    if data.strip() == "[DONE]":
                        break
                    chunk = self._parse_chunk(data)
                    if chunk.get("usage"):
                        usage = parse_usage(chunk["usage"], self.name)
                    for choice in chunk.get("choices") or []:
                        text = (
                            (choice.get("delta") or {}).get("content")
                            if chat
                            else choice.get("text")
                        )
                        finish = choice.get("finish_reason") or finish
                        logprobs = parse_logprobs(choice.get("logprobs"))
                        if text or logprobs:
                            yield Delta(text=text or "", logprobs=logprobs)
        except httpx.HTTPError as exc:
            raise error_for_exception(self.name, exc) from exc
        yield Delta(finish_reason=finish or "stop", usage=usage)

    def _parse_chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError(
                f"upstream model {self.name!r} sent a malformed stream chunk: {data[:200]!r}"
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(f"upstream model {self.name!r} sent a malformed stream chunk")
        if "error" in chunk:
            raise UpstreamError(f"upstream model {self.name!r} failed mid-stream: {chunk['error']}")
        return chunk

    async def embed(self, texts: list[str]) -> list[list[float]]:
        data = await self._post("/embeddings", {"model": self.upstream_model, "input": texts})
        items = sorted(data.get("data") or [], key=lambda d: d.get("index", 0))
        return [item["embedding"] for item in items]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
