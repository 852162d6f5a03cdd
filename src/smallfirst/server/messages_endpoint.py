"""`POST /v1/messages`: Anthropic's Messages API in front of every configured model.

The request becomes our `ChatRequest` and takes the chat path (server/chat.py): the same name
resolution, routing, admission, failover with hop rows, budgets and one ledger row (endpoint
`messages`). There is no byte pass-through here: an OpenAI-compatible upstream is called
through its provider and its answer rendered in Anthropic's shape, like any other backend's.
Errors, wherever they arise, answer in Anthropic's error shape with the right status.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

from smallfirst.errors import SmallfirstError
from smallfirst.routing.cascade import replay
from smallfirst.server import admission, passthrough
from smallfirst.server.call import Call
from smallfirst.server.cascade_call import climb
from smallfirst.server.chat import admit, failover_options, hops_kept, start_call
from smallfirst.server.messages_stream import stream_messages
from smallfirst.target import CascadeTarget
from smallfirst.types import ChatRequest, Generation
from smallfirst.wire.anthropic_render import error_json, message_json
from smallfirst.wire.anthropic_schemas import MessagesBody
from smallfirst.wire.schemas import validate

log = logging.getLogger("smallfirst.server")


async def messages(request: Request) -> Response:
    """Every failure of this route in Anthropic's error shape (the app's handlers answer in
    OpenAI's)."""
    try:
        return await _messages(request)
    except SmallfirstError as exc:
        return error_response(exc, request)
    except Exception as exc:
        log.exception("unexpected error on /v1/messages", exc_info=exc)
        return error_response(SmallfirstError(f"internal error: {type(exc).__name__}"), request)


async def _messages(request: Request) -> Response:
    gateway, call, data = await start_call(request, "messages")
    body = validate(MessagesBody, data)
    call.entry.stream = body.stream
    chat = ChatRequest(body.to_messages(), body.params())
    as_openai = body.openai_view(chat.messages, chat.params)
    if gateway.log_prompts:  # as chat rows keep them: OpenAI messages, the system prompt first
        call.entry.prompt = orjson.dumps(as_openai["messages"]).decode()
    prompt_tokens = admission.prompt_tokens(as_openai)
    target = gateway.resolve(call, body.model)
    call.request = chat
    if gateway.learning is not None:  # a cascade's name names the task (as on chat)
        endpoint = target.name if isinstance(target, CascadeTarget) else None
        chat.task = call.entry.task = gateway.learning.task_of(data, request.headers, endpoint)
    if isinstance(target, CascadeTarget):
        result, _ = await climb(gateway, call, target, chat, prompt_tokens, stream=False)
        if body.stream:
            return await stream_messages(call, replay(result.generation))
        return answered(call, result.generation)
    route = await gateway.route(call, target, chat)
    await admit(call, prompt_tokens, body.max_tokens)
    log, options = failover_options(call, route)
    if body.stream:
        return await stream_messages(call, hops_kept(call, log, target.stream(chat, **options)))
    try:
        found = await target.generate(chat, **options)
    finally:
        passthrough.record_retries(call, log)
    generation = found.generation
    call.entry.ttft_ms = None if generation.ttft_s is None else generation.ttft_s * 1000
    return answered(call, generation)


def answered(call: Call, generation: Generation) -> Response:
    """Rendered before the call succeeds: an answer that cannot be written in Anthropic's
    shape (call arguments that are no JSON object) is a failure, not a charge."""
    data = orjson.dumps(message_json(generation, call.request_id))
    call.succeed(generation.usage, generation.text)
    return Response(data, media_type="application/json", headers=call.headers())


def error_response(error: SmallfirstError, request: Request) -> Response:
    call: Call | None = getattr(request.state, "call", None)
    headers = dict(error.headers)
    if call is not None:
        if not call.finished:
            call.fail(error)
        headers.update(call.headers())
    return Response(
        orjson.dumps(error_json(error)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )
