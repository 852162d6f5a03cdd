"""The fast path for configured OpenAI-compatible models: forward bytes, read only what we need.

The client's body goes upstream as sent (only `model` is rewritten, so tools and other fields
keep working); the upstream's bytes come back unchanged. Streams are relayed event by event:
each event is parsed once (orjson) for usage, text and errors, and never rebuilt. Upstream is
always asked for usage so the ledger has tokens; the usage-only event is dropped when the client
did not ask for it. A client that leaves mid-stream is charged for what was relayed to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response, StreamingResponse

from smallfirst.errors import SmallfirstError, UpstreamError
from smallfirst.models.openai import OpenAIProvider, parse_usage
from smallfirst.server.admission import delivered_usage
from smallfirst.server.call import Call
from smallfirst.server.render import DONE, error_event
from smallfirst.server.streaming import SSE_HEADERS
from smallfirst.server.upstream import transport_error
from smallfirst.types import Usage


async def forward(
    call: Call, provider: OpenAIProvider, path: str, body: dict[str, Any]
) -> Response:
    pool = call.gateway.upstreams
    response = await pool.post(provider, path, orjson.dumps(body))
    try:
        content = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(provider.name, exc) from exc
    finally:
        response.release()
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"upstream model {provider.name!r} returned malformed JSON: {content[:200]!r}"
        ) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError(f"upstream model {provider.name!r} returned no choices")
    call.succeed(parse_usage(data.get("usage")), _text(choices[0]))
    return Response(content, media_type="application/json", headers=call.headers())


def _text(choice: dict[str, Any]) -> str:
    message = choice.get("message")
    if isinstance(message, dict):
        return message.get("content") or ""
    return choice.get("text") or (choice.get("delta") or {}).get("content") or ""


async def forward_stream(
    call: Call, provider: OpenAIProvider, path: str, body: dict[str, Any], include_usage: bool
) -> StreamingResponse:
    body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    response = await call.gateway.upstreams.post(provider, path, orjson.dumps(body))
    return StreamingResponse(
        _relay(call, provider.name, response, SseRelay(call, include_usage)),
        media_type="text/event-stream",
        headers={**call.headers(), **SSE_HEADERS},
    )


async def _relay(
    call: Call, name: str, response: aiohttp.ClientResponse, relay: SseRelay
) -> AsyncIterator[bytes]:
    try:
        async for raw in response.content.iter_any():
            out = relay.feed(raw)
            if out:
                yield out
        if relay.error is not None:
            error = UpstreamError(f"upstream model {name!r} failed mid-stream: {relay.error}")
            call.fail(error, relay.delivered_if_any())
        elif not (relay.done or relay.finished):
            error = UpstreamError(f"upstream model {name!r} ended the stream early")
            call.fail(error, relay.delivered_if_any())
            yield error_event(error.to_openai())
        else:
            call.succeed(relay.usage(), "".join(relay.parts))
            yield DONE
    except (aiohttp.ClientError, TimeoutError, SmallfirstError) as exc:
        error = exc if isinstance(exc, SmallfirstError) else transport_error(name, exc)
        call.fail(error, relay.delivered_if_any())
        yield error_event(error.to_openai())
    finally:
        response.release()
        if not call.finished:
            call.disconnected(relay.delivered())


class SseRelay:
    """Splits upstream bytes into events, inspects each once, and says which to pass on."""

    def __init__(self, call: Call, include_usage: bool) -> None:
        self.call = call
        self.include_usage = include_usage
        self.buffer = b""
        self.parts: list[str] = []
        self.raw_usage: dict[str, Any] | None = None
        self.done = False
        self.finished = False
        self.error: Any = None

    def feed(self, raw: bytes) -> bytes:
        if b"\r" in raw:
            raw = raw.replace(b"\r\n", b"\n")
        buffer = self.buffer + raw
        out: list[bytes] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event = buffer[start : end + 2]
            start = end + 2
            if self._keep(event):
                out.append(event)
        self.buffer = buffer[start:]
        return b"".join(out)

    def _keep(self, event: bytes) -> bool:
        index = event.find(b"data:")
        if index < 0:
            return True
        payload = event[index + 5 :].strip()
        if payload == b"[DONE]":
            self.done = True
            return False
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            message = f"malformed stream event from upstream: {payload[:200]!r}"
            raise UpstreamError(message) from None
        if not isinstance(chunk, dict):
            return True
        if "error" in chunk:
            self.error = chunk["error"]
            return True
        choices = chunk.get("choices") or []
        for choice in choices:
            text = choice.get("text") or (choice.get("delta") or {}).get("content")
            if text:
                self.call.first_token()
                self.parts.append(text)
            if choice.get("finish_reason"):
                self.finished = True
        if chunk.get("usage"):
            self.raw_usage = chunk["usage"]
            return bool(choices) or self.include_usage
        return True

    def usage(self) -> Usage:
        return parse_usage(self.raw_usage)

    def delivered_if_any(self) -> Usage | None:
        """What a failed stream had relayed to the client, to charge it (None: nothing)."""
        return self.delivered() if self.parts else None

    def delivered(self) -> Usage:
        """What a client that left got: the upstream's usage if it came, else the bound of
        the prompt and of the text deltas relayed so far."""
        if self.raw_usage is not None:
            try:
                return self.usage()
            except SmallfirstError:
                pass
        return delivered_usage(self.call.estimate, self.parts)
