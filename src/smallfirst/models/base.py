"""The one I/O boundary: every backend implements `Provider`.

Like an httpx transport, a provider does one thing (turn a request into a generation); routing,
accounting and serving live elsewhere and never learn which backend answered.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from smallfirst.errors import InvalidRequestError
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Generation
from smallfirst.wire.collect import StreamCollector


@runtime_checkable
class Provider(Protocol):
    """An async model backend. Streams yield `Delta`s; the last one carries usage."""

    name: str

    async def chat(self, request: ChatRequest) -> Generation: ...

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]: ...

    async def complete(self, request: CompletionRequest) -> Generation: ...

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


async def collect(name: str, deltas: AsyncIterator[Delta]) -> Generation:
    """Drain a stream into one Generation, timing first token and total latency."""
    started = time.perf_counter()
    collected = StreamCollector()
    ttft: float | None = None
    async for delta in deltas:
        if delta.text and ttft is None:
            ttft = time.perf_counter() - started
        collected.add_delta(delta)
    answer = collected.answer(name)
    answer.latency_s = time.perf_counter() - started
    answer.ttft_s = ttft
    return answer


class StreamingProvider:
    """Base for backends whose native operation is a stream; non-streaming calls collect it."""

    name: str = "provider"

    async def chat(self, request: ChatRequest) -> Generation:
        return await collect(self.name, self.stream_chat(request))

    async def complete(self, request: CompletionRequest) -> Generation:
        return await collect(self.name, self.stream_complete(request))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        raise NotImplementedError

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        raise NotImplementedError

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise InvalidRequestError(f"model {self.name!r} does not serve embeddings")

    async def aclose(self) -> None:
        return None
