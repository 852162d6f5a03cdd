"""`POST /v1/chat/completions` and `POST /v1/completions`.

One path for both: authenticate, read and validate the body, route, reserve the key's limits,
then either forward to an OpenAI-compatible upstream as bytes or run a provider and render an
OpenAI answer; both retry and fail over by `failover:`, each retry and fallback a hop row.
Every outcome, error included, finishes the `Call` and so becomes a ledger row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from smallfirst import cache
from smallfirst.errors import InvalidRequestError, PayloadTooLargeError
from smallfirst.learning.target import LearnedTarget
from smallfirst.models.openai import OpenAIProvider
from smallfirst.routing.hops import HopLog
from smallfirst.server import admission, passthrough
from smallfirst.server.call import Call
from smallfirst.server.cascade_call import run_cascade
from smallfirst.server.edge_limits import ClientClosedError
from smallfirst.server.gateway import Gateway
from smallfirst.server.streaming import stream_deltas
from smallfirst.target import CascadeTarget, Route, Target
from smallfirst.types import ChatRequest, CompletionRequest, Delta
from smallfirst.wire.fields import COMPLETION_HONOURED, HONOURED, refuse_unforwardable
from smallfirst.wire.render import completion_json
from smallfirst.wire.schemas import ChatBody, CompletionBody, parse_json, validate


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes; a client
    that leaves during the upload is a 499 (`ClientClosedError`), not a server error."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(
            f"the request body is {int(length)} bytes; this gateway accepts at most {limit} "
            "(server.max_body_bytes)"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(
                    f"the request body exceeds {limit} bytes (server.max_body_bytes)"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosedError("the client went away while sending the request body") from None
    return b"".join(chunks)


async def start_call(request: Request, endpoint: str) -> tuple[Gateway, Call, dict[str, Any]]:
    """Authenticate and read the JSON body; the call is on `request.state` for error handlers."""
    gateway: Gateway = request.app.state.gateway
    call = gateway.begin(endpoint)
    request.state.call = call
    await gateway.authenticate(call, request.headers)
    data = parse_json(await read_body(request, gateway.max_body_bytes))
    return gateway, call, data


async def chat_completions(request: Request) -> Response:
    gateway, call, data = await start_call(request, "chat")
    body = validate(ChatBody, data)
    call.entry.stream = body.stream
    messages = body.to_messages()
    if gateway.log_prompts:
        call.entry.prompt = orjson.dumps(data["messages"]).decode()
    prompt_tokens = admission.prompt_tokens(data)
    chat = ChatRequest(messages, body.params())
    return await answer(call, "/chat/completions", data, body, chat, prompt_tokens, request.headers)


async def completions(request: Request) -> Response:
    gateway, call, data = await start_call(request, "completions")
    body = validate(CompletionBody, data)
    call.entry.stream = body.stream
    prompt = body.prompt_text
    if gateway.log_prompts:
        call.entry.prompt = prompt
    prompt_tokens = admission.prompt_tokens(data)
    completion = CompletionRequest(prompt, body.params())
    return await answer(
        call, "/completions", data, body, completion, prompt_tokens, request.headers
    )


async def answer(
    call: Call,
    path: str,
    data: dict[str, Any],
    body: ChatBody | CompletionBody,
    request: ChatRequest | CompletionRequest,
    prompt_tokens: int,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Resolve the target once; a cascade runs its ladder, anything else is routed to one
    model, admitted, and then forwarded as bytes (OpenAI-compatible) or run and rendered.
    The response cache (smallfirst/cache/) answers hits before routing and keeps answers."""
    gateway = call.gateway
    target = gateway.resolve(call, body.model)
    call.request = request
    if gateway.learning is not None:
        request.task = call.entry.task = gateway.learning.task_of(data, headers, _endpoint(target))
    cached = await cache.lookup(call, target, path, data, request, headers)
    if cached.response is not None:
        return cached.response
    return cached.keep(await _answer(call, target, path, data, body, request, prompt_tokens))


def _endpoint(target: Target) -> str | None:
    """A cascade's name names the task of a request that does not name its own."""
    return target.name if isinstance(target, CascadeTarget) else None


async def _answer(
    call: Call,
    target: Target,
    path: str,
    data: dict[str, Any],
    body: ChatBody | CompletionBody,
    request: ChatRequest | CompletionRequest,
    prompt_tokens: int,
) -> Response:
    gateway = call.gateway
    honoured = HONOURED if isinstance(request, ChatRequest) else COMPLETION_HONOURED
    if isinstance(target, CascadeTarget):
        refuse_unforwardable(data, target.name, honoured)
        return await run_cascade(
            gateway, call, target, request, prompt_tokens, body.stream, body.include_usage
        )
    route = await _route(call, target, data, request, honoured)
    await admit(call, prompt_tokens, body.output_limit)
    if isinstance(target, LearnedTarget) and target.in_process(route):  # a student's label
        return await run_provider(call, target, route, request, body)
    provider = gateway.registry.raw_provider(route.model.name)
    if isinstance(provider, OpenAIProvider):
        if body.stream:
            return await passthrough.forward_stream(call, provider, path, data, body.include_usage)
        return await passthrough.forward(call, provider, path, data)
    refuse_unforwardable(data, route.model.name, honoured)
    return await run_provider(call, target, route, request, body)


async def _route(
    call: Call,
    target: Target,
    data: dict[str, Any],
    request: ChatRequest | CompletionRequest,
    honoured: frozenset[str],
) -> Route:
    """Put the first model on the call. A learned student answers only a request whose every
    field it honours; one with a pass-through-only field goes up to the policy's rungs."""
    if not isinstance(target, LearnedTarget):
        return await call.gateway.route(call, target, request)
    try:
        refuse_unforwardable(data, target.name, honoured)
        student = True
    except InvalidRequestError:
        student = False
    route = await target.aroute(request, student=student)
    call.routed(route.model, route.decision)
    return route


async def run_provider(
    call: Call,
    target: Target,
    route: Route,
    request: ChatRequest | CompletionRequest,
    body: ChatBody | CompletionBody,
) -> Response:
    """Any other backend, through its failover policy: each retry and fallback is a hop row,
    a fallback is tried only if it fits the admitted budget, and the request row names (and
    is priced at) the model that answered."""
    chat = isinstance(request, ChatRequest)
    log, options = failover_options(call, route)
    if body.stream:
        deltas = target.stream(request, **options)
        return await stream_deltas(call, hops_kept(call, log, deltas), chat, body.include_usage)
    try:
        found = await target.generate(request, **options)
    finally:
        passthrough.record_retries(call, log)
    generation = found.generation
    if chat:
        call.entry.ttft_ms = None if generation.ttft_s is None else generation.ttft_s * 1000
    call.succeed(generation.usage, generation.text, generation.tool_calls)
    return json_response(completion_json(generation, call.request_id, chat=chat), call)


def failover_options(call: Call, route: Route) -> tuple[HopLog, dict[str, Any]]:
    """The hop log and the `generate` / `stream` options that keep a target's fallbacks
    within the admitted budget and put the model that answered on the call."""
    registry = call.gateway.registry
    log = HopLog(call.request_id)

    def fits(name: str) -> bool:
        return call.fits(registry.get(name))

    def answered_by(name: str) -> None:
        call.routed(registry.get(name), None)

    return log, {"route": route, "log": log, "allow": fits, "on_model": answered_by}


async def hops_kept(call: Call, log: HopLog, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """The stream, and its hops recorded once it ended (answered, failed or cut off)."""
    try:
        async for delta in deltas:
            yield delta
    finally:
        passthrough.record_retries(call, log)


async def admit(call: Call, prompt_tokens: int, max_tokens: int | None) -> None:
    """Reserve the routed model's worst case for the whole request (server/admission.py)."""
    if call.model is not None:
        await call.admit(estimate=admission.for_model(call.model, prompt_tokens, max_tokens))


def json_response(data: dict[str, Any], call: Call) -> Response:
    return Response(orjson.dumps(data), media_type="application/json", headers=call.headers())
