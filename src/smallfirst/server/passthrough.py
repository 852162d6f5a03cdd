"""The fast path for configured OpenAI-compatible models: forward bytes, read only what we need.

The client's body goes upstream as sent (only `model` is rewritten, so tools and other fields
keep working); the upstream's bytes come back unchanged. Streams are relayed event by event:
each event is parsed once (orjson) for usage, text and errors, and never rebuilt. Upstream is
always asked for usage so the ledger has tokens; the usage-only event is dropped when the client
did not ask for it. A client that leaves mid-stream is charged for what was relayed to it.

A failed first attempt (5xx, 429, reset, timeout, malformed reply) is retried and failed over
by the registry's failover policy (`recover`), a stream only until its first bytes arrived;
the happy path does nothing more than one POST.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import orjson
from starlette.responses import Response, StreamingResponse

from smallfirst.errors import SmallfirstError, UpstreamError
from smallfirst.models.openai import OpenAIProvider
from smallfirst.routing.fallback import Deadline
from smallfirst.routing.hops import HopLog
from smallfirst.routing.requirements import unfit_for
from smallfirst.routing.resilience import failover_caller
from smallfirst.server.admission import delivered_usage
from smallfirst.server.call import Call
from smallfirst.server.cascade_call import record_hops
from smallfirst.server.streaming import SSE_HEADERS
from smallfirst.server.upstream import UpstreamPool, transport_error
from smallfirst.types import ToolCall, Usage
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.parse import choice_text, decode_chunk, first_choice, parse_usage
from smallfirst.wire.render import DONE, error_event
from smallfirst.wire.sse import SseDecoder, SseEvent
from smallfirst.wire.tool_calls import parse_tool_calls

T = TypeVar("T")


async def forward(
    call: Call, provider: OpenAIProvider, path: str, data: dict[str, Any]
) -> Response:
    """`data` is the client's body; it goes upstream with only `model` rewritten."""
    pool = call.gateway.upstreams
    if healthy(call, provider):
        try:
            content, answer = await _exchange(pool, provider, path, data)
        except SmallfirstError as exc:
            content, answer = await _forward_again(call, provider, path, data, exc)
    else:
        content, answer = await _forward_again(call, provider, path, data, None)
    choice = answer["choices"][0]
    call.succeed(parse_usage(answer.get("usage")), choice_text(choice), choice_tool_calls(choice))
    return Response(content, media_type="application/json", headers=call.headers())


def choice_tool_calls(choice: dict[str, Any]) -> list[ToolCall] | None:
    """The calls of a forwarded answer, for the call's record (learning); malformed ones are
    none here: the client already has the bytes as they came."""
    message = choice.get("message")
    try:
        return parse_tool_calls(message.get("tool_calls") if isinstance(message, dict) else None)
    except UpstreamError:
        return None


def healthy(call: Call, provider: OpenAIProvider) -> bool:
    """No recent failure on this model: the fast path makes its one POST without any more
    policy work; otherwise the failover policy runs from the first attempt."""
    return failover_caller(call.gateway.registry).breaker.closed(provider.name)


async def _forward_again(
    call: Call,
    provider: OpenAIProvider,
    path: str,
    data: dict[str, Any],
    error: SmallfirstError | None,
) -> tuple[bytes, dict[str, Any]]:
    pool = call.gateway.upstreams

    async def again(other: OpenAIProvider) -> tuple[bytes, dict[str, Any]]:
        return await _exchange(pool, other, path, data)

    log = HopLog(call.request_id)
    try:
        name, (content, answer) = await recover(call, provider, error, again, log)
        if log.hops:
            usage = parse_usage(answer.get("usage"))
            model = call.gateway.registry.get(name)
            cost = model.price.cost(usage)
            detail = "answered after a retry or fallback"
            log.add_usage("answer", usage, cost, model=name, tier=model.tier, outcome="ok",
                          detail=detail)  # fmt: skip
    finally:
        record_retries(call, log)
    return content, answer


async def _exchange(
    pool: UpstreamPool, provider: OpenAIProvider, path: str, data: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    """One attempt: the upstream's bytes and their parsed JSON, or the error it amounts to."""
    response = await pool.post(
        provider, path, orjson.dumps({**data, "model": provider.upstream_model})
    )
    try:
        content = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(provider.name, exc) from exc
    finally:
        response.release()
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"upstream model {provider.name!r} returned malformed JSON: {content[:200]!r}"
        ) from None
    first_choice(answer, provider.name)
    return content, answer


async def recover(
    call: Call,
    failed: OpenAIProvider,
    error: SmallfirstError | None,
    again: Callable[[OpenAIProvider], Awaitable[T]],
    log: HopLog,
) -> tuple[str, T]:
    """The fast path's first attempt failed (`error`; None: it was not made, the model had
    failed lately): retry and fall back by the registry's failover policy, each hop in `log`.

    Only OpenAI-compatible fallbacks are tried (the client's bytes go on unchanged, so the
    request keeps its meaning), only those that have every capability the request needs and
    whose context fits it (a text-only fallback would get the images; the skip is a hop
    saying why), and only those whose worst case fits what the key was admitted for
    (`Call.fits`). The request row names the model that answered, so it is charged that
    model's price."""
    registry = call.gateway.registry
    caller = failover_caller(registry)

    def forwardable(name: str) -> bool:
        return isinstance(registry.raw_provider(name), OpenAIProvider) and call.fits(
            registry.get(name)
        )

    unfit = unfit_for(registry, call.request) if call.request is not None else None

    async def once(name: str) -> T:
        return await again(registry.raw_provider(name))  # type: ignore[arg-type]

    spent = time.perf_counter() - call.started
    deadline = Deadline.after(max(caller.config.deadline_s - spent, 0.001))
    chain = caller.chain(failed.name)
    name, answer = await caller.run(
        chain, once, log, deadline, first_error=error, allow=forwardable, unfit=unfit
    )
    if name != failed.name:
        call.routed(registry.get(name), None)
    return name, answer


def record_retries(call: Call, log: HopLog) -> None:
    """The failover hops as rows, when the request took more than one step (a lone failed
    attempt is already the request row's error)."""
    if len(log.hops) > 1:
        record_hops(call.gateway, call.entry, log.hops)


async def forward_stream(
    call: Call, provider: OpenAIProvider, path: str, data: dict[str, Any], include_usage: bool
) -> StreamingResponse:
    """Retried and failed over until the upstream's first bytes arrive, never after: the
    response starts only once they are here."""
    options = {**(data.get("stream_options") or {}), "include_usage": True}
    data = {**data, "stream_options": options}
    pool = call.gateway.upstreams
    if healthy(call, provider):
        try:
            response, head = await _open_stream(pool, provider, path, data)
        except SmallfirstError as exc:
            provider, response, head = await _stream_again(call, provider, path, data, exc)
    else:
        provider, response, head = await _stream_again(call, provider, path, data, None)
    return StreamingResponse(
        _relay(call, provider.name, response, SseRelay(call, provider.name, include_usage), head),
        media_type="text/event-stream",
        headers={**call.headers(), **SSE_HEADERS},
    )


async def _stream_again(
    call: Call,
    provider: OpenAIProvider,
    path: str,
    data: dict[str, Any],
    error: SmallfirstError | None,
) -> tuple[OpenAIProvider, aiohttp.ClientResponse, bytes]:
    pool = call.gateway.upstreams

    async def again(other: OpenAIProvider) -> tuple[aiohttp.ClientResponse, bytes]:
        return await _open_stream(pool, other, path, data)

    log = HopLog(call.request_id)
    try:
        name, (response, head) = await recover(call, provider, error, again, log)
        if log.hops:
            tier = call.gateway.registry.get(name).tier
            detail = "streaming after a retry or fallback"
            log.add("answer", model=name, tier=tier, outcome="ok", detail=detail)
    finally:
        record_retries(call, log)
    return call.gateway.registry.raw_provider(name), response, head  # type: ignore[return-value]


async def _open_stream(
    pool: UpstreamPool, provider: OpenAIProvider, path: str, data: dict[str, Any]
) -> tuple[aiohttp.ClientResponse, bytes]:
    """One attempt: the upstream's response and its first bytes (b"" if it ended at once)."""
    body = orjson.dumps({**data, "model": provider.upstream_model})
    response = await pool.post(provider, path, body)
    try:
        return response, await response.content.readany()
    except (aiohttp.ClientError, TimeoutError) as exc:
        response.release()
        raise transport_error(provider.name, exc) from exc


async def _relay(
    call: Call, name: str, response: aiohttp.ClientResponse, relay: SseRelay, head: bytes
) -> AsyncIterator[bytes]:
    try:
        out = relay.feed(head)
        if out:
            yield out
        async for raw in response.content.iter_any():
            out = relay.feed(raw)
            if out:
                yield out
        out = relay.close()
        if out:
            yield out
        collected = relay.collected
        if collected.error is not None:
            error = UpstreamError(f"upstream model {name!r} failed mid-stream: {collected.error}")
            call.fail(error, relay.delivered_if_any())
        elif not (collected.done or collected.finish_reason):
            error = UpstreamError(f"upstream model {name!r} ended the stream early")
            call.fail(error, relay.delivered_if_any())
            yield error_event(error.to_openai())
        else:
            call.succeed(collected.usage(), collected.text, collected.tool_calls.calls())
            yield DONE
    except (aiohttp.ClientError, TimeoutError, SmallfirstError) as exc:
        failure = exc if isinstance(exc, SmallfirstError) else transport_error(name, exc)
        call.fail(failure, relay.delivered_if_any())
        yield error_event(failure.to_openai())
    finally:
        response.release()
        if not call.finished:
            call.disconnected(relay.delivered())


class SseRelay:
    """Splits upstream bytes into events, reads each once, and says which to pass on."""

    def __init__(self, call: Call, model: str, include_usage: bool) -> None:
        self.call = call
        self.include_usage = include_usage
        self.decoder = SseDecoder()
        self.collected = StreamCollector(model)

    def feed(self, raw: bytes) -> bytes:
        return b"".join(event.raw for event in self.decoder.feed(raw) if self._keep(event))

    def close(self) -> bytes:
        """An event the upstream left without its closing blank line."""
        return b"".join(event.raw for event in self.decoder.close() if self._keep(event))

    def _keep(self, event: SseEvent) -> bool:
        """Read the event; False for the ones the client does not get: the upstream's
        `[DONE]` (the relay sends its own once the request is settled) and the usage-only
        chunk the client did not ask for."""
        if event.data is None:
            return True
        if event.data.strip() == b"[DONE]":
            self.collected.done = True
            return False
        chunk = decode_chunk(event.data, self.collected.model)
        if any(piece.text for piece in self.collected.add_chunk(chunk)):
            self.call.first_token()
        if chunk.get("usage") and "error" not in chunk:
            return bool(chunk.get("choices")) or self.include_usage
        return True

    def delivered_if_any(self) -> Usage | None:
        """What a failed stream had relayed to the client, to charge it (None: nothing)."""
        return self.delivered() if self.collected.parts else None

    def delivered(self) -> Usage:
        """What a client that left got: the upstream's usage if it came, else the bound of
        the prompt and of the text deltas relayed so far."""
        if self.collected.has_usage:
            try:
                return self.collected.usage()
            except SmallfirstError:
                pass
        return delivered_usage(self.call.estimate, self.collected.parts)
