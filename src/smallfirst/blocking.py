"""Blocking twins of async calls, for library users who do not run an event loop.

Every blocking call in the process runs on one daemon thread's event loop, so HTTP clients,
loaded models and circuit breakers made by one call stay usable by the next (a fresh
`asyncio.run` per call would close them).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class _BackgroundLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, daemon=True).start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


_LOOP = _BackgroundLoop()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the shared loop and wait for its result."""
    return _LOOP.submit(coro).result()


def iterate_blocking(items: AsyncIterator[T]) -> Iterator[T]:
    """Pull an async iterator item by item from the shared loop; closing the returned
    iterator early closes the async one (so a stream left half-read releases its model)."""
    done = object()

    async def step() -> Any:
        try:
            return await anext(items)
        except StopAsyncIteration:
            return done

    try:
        while (item := run_blocking(step())) is not done:
            yield item
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            run_blocking(close())
