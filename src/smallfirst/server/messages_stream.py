"""A streamed `/v1/messages` answer: our deltas as Anthropic's events, with the same charging
rules as the chat stream (server/streaming.py).

The first delta is awaited before the response starts, so a failure before any token keeps
its real HTTP status. A failure after that is an `error` event, charged for what was sent; a
client that leaves is charged for what it was sent (the upstream's usage when it came, else
the prompt's bound and the relayed text and tool-call arguments).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from smallfirst.errors import SmallfirstError, UpstreamError
from smallfirst.server.admission import delivered_usage
from smallfirst.server.call import Call
from smallfirst.server.streaming import SSE_HEADERS
from smallfirst.types import Delta, Usage
from smallfirst.wire.anthropic_render import EventWriter


async def stream_messages(call: Call, deltas: AsyncIterator[Delta]) -> StreamingResponse:
    first = await anext(deltas, None)
    writer = EventWriter(call.request_id, call.entry.model or "")
    return StreamingResponse(
        _events(call, deltas, first, writer),
        media_type="text/event-stream",
        headers={**call.headers(), **SSE_HEADERS},
    )


async def _events(
    call: Call, deltas: AsyncIterator[Delta], delta: Delta | None, writer: EventWriter
) -> AsyncIterator[bytes]:
    text: list[str] = []
    sent: list[str] = []
    """Every relayed piece of text or call arguments: what a client that leaves was sent."""
    usage: Usage | None = None
    finish: str | None = None
    try:
        yield writer.start()
        while delta is not None:
            if delta.text:
                text.append(delta.text)
                sent.append(delta.text)
            sent.extend(piece.arguments for piece in delta.tool_calls or () if piece.arguments)
            if delta.text or delta.tool_calls:
                call.first_token()
                yield writer.delta(delta)
            usage = delta.usage or usage
            finish = delta.finish_reason or finish
            delta = await anext(deltas, None)
        answered = usage or Usage()
        call.succeed(answered, "".join(text))
        yield writer.finish(finish, answered)
    except Exception as exc:
        error = exc if isinstance(exc, SmallfirstError) else UpstreamError(str(exc))
        call.fail(error, delivered_usage(call.estimate, sent) if sent else None)
        yield writer.error(error)
    finally:
        if not call.finished:
            call.disconnected(usage or delivered_usage(call.estimate, sent))
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
