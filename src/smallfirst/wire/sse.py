"""Server-sent events read from a byte stream, however the bytes happen to be split.

One parser for every reader: the pass-through relay (which forwards each event's bytes
unchanged, so an event keeps its `raw` bytes), the OpenAI-compatible and Anthropic providers
(through `sse_events` on an httpx response). No library in our dependencies parses SSE from
raw bytes with the raw event kept, so this is the one small parser we keep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class SseEvent:
    raw: bytes
    """The event as received, ending in a blank line (line breaks normalised to `\\n`)."""
    event: str | None
    data: bytes | None
    """The `data:` lines joined with `\\n`; None when the event had none (a comment)."""


class SseDecoder:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # A trailing CR may be the first half of a CRLF split across two reads.
            held = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[: len(buffer) - len(held)]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + held
        events: list[SseEvent] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            events.append(_event(buffer[start : end + 2]))
            start = end + 2
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SseEvent]:
        """The last event when the stream ended without its blank line."""
        rest = self._buffer.rstrip(b"\r\n")
        self._buffer = b""
        return [_event(rest + b"\n\n")] if rest else []


def _event(raw: bytes) -> SseEvent:
    name: str | None = None
    data: list[bytes] = []
    for line in raw[:-2].split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    return SseEvent(raw, name, b"\n".join(data) if data else None)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """(event name, data) for each event of an httpx streaming response that carries data."""
    decoder = SseDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(chunk):
            if event.data is not None:
                yield event.event, event.data.decode("utf-8", "replace")
    for event in decoder.close():
        if event.data is not None:
            yield event.event, event.data.decode("utf-8", "replace")
