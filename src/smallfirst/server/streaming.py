"""Server-sent events for answers from non-OpenAI backends (embedded llama.cpp, Anthropic).

The first delta is awaited before the response starts, so a failure that happens before any
token (context too long, model cannot load) still gets its real HTTP status. Later failures
become an OpenAI-shaped `error` event. The ledger row is finished before the final `[DONE]`;
a client that leaves mid-stream is charged for the deltas it was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from smallfirst.errors import SmallfirstError, UpstreamError
from smallfirst.server.admission import delivered_usage
from smallfirst.server.call import Call
from smallfirst.types import Delta
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.render import DONE, ChunkWriter, error_event

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def stream_deltas(
    call: Call, deltas: AsyncIterator[Delta], chat: bool, include_usage: bool
) -> StreamingResponse:
    first = await anext(deltas, None)
    writer = ChunkWriter(call.request_id, call.entry.model or "", chat)
    return StreamingResponse(
        _events(call, deltas, first, writer, include_usage),
        media_type="text/event-stream",
        headers={**call.headers(), **SSE_HEADERS},
    )


async def _events(
    call: Call,
    deltas: AsyncIterator[Delta],
    delta: Delta | None,
    writer: ChunkWriter,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    collected = StreamCollector()
    try:
        if writer.chat:
            yield writer.role()
        while delta is not None:
            collected.add_delta(delta)
            if delta.text:
                call.first_token()
                yield writer.text(delta.text)
            if delta.tool_calls:
                call.first_token()
                yield writer.tool_calls(delta.tool_calls)
            if delta.refusal and writer.chat:
                call.first_token()
                yield writer.refusal(delta.refusal)
            delta = await anext(deltas, None)
        usage = collected.usage()
        call.succeed(usage, collected.text, collected.tool_calls.calls())
        yield writer.finish(collected.finish_reason or "stop")
        if include_usage:
            yield writer.usage(usage)
        yield DONE
    except Exception as exc:
        error = exc if isinstance(exc, SmallfirstError) else UpstreamError(str(exc))
        call.fail(
            error, delivered_usage(call.estimate, collected.parts) if collected.parts else None
        )
        yield error_event(error.to_openai())
    finally:
        if not call.finished:
            call.disconnected(
                collected.usage()
                if collected.has_usage
                else delivered_usage(call.estimate, collected.parts)
            )
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
