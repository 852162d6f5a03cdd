"""`POST /v1/responses`: OpenAI's Responses API on the gateway's one Target path.

The body becomes a `ChatRequest` (instructions first, then the stored conversation of
`previous_response_id`, then this input); it is resolved, routed, admitted and answered
through the target with the same failover options, ledger row (endpoint `responses`) and
budgets as chat, and the answer is rendered as a `response` object or its streaming events.
With `store` (the default) the conversation, answer included, is kept in the ledger
database so a later request can continue it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as Endpoint

from smallfirst.errors import NotFoundError, SmallfirstError, UpstreamError
from smallfirst.ledger.responses_store import ResponsesStore
from smallfirst.routing.hops import HopLog
from smallfirst.server import admission, passthrough
from smallfirst.server.call import Call
from smallfirst.server.cascade_call import record_hops
from smallfirst.server.chat import admit, failover_options, hops_kept, json_response, start_call
from smallfirst.server.gateway import Gateway
from smallfirst.server.streaming import SSE_HEADERS
from smallfirst.target import Answer, CascadeTarget, Route, Target
from smallfirst.types import ChatRequest, Delta, Generation, Message
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.requests import chat_body
from smallfirst.wire.responses_render import ResponseOutput
from smallfirst.wire.responses_schemas import ResponsesBody
from smallfirst.wire.schemas import validate
from smallfirst.wire.tool_calls import deltas_of

RESPONSE_PREFIX = "resp_"


async def responses(request: Request) -> Response:
    gateway, call, data = await start_call(request, "responses")
    body = validate(ResponsesBody, data)
    call.entry.stream = body.stream
    conversation = await _history(call, body) + body.input_messages()
    if gateway.log_prompts:
        call.entry.prompt = orjson.dumps(data["input"]).decode()
    system = [Message("system", body.instructions)] if body.instructions else []
    chat = ChatRequest(system + conversation, body.params())
    prompt_tokens = admission.prompt_tokens(chat_body("", chat, False))
    target = gateway.resolve(call, body.model)
    call.request = chat
    if gateway.learning is not None:  # a cascade's name names the task (as on chat)
        endpoint = target.name if isinstance(target, CascadeTarget) else None
        chat.task = call.entry.task = gateway.learning.task_of(data, request.headers, endpoint)
    route = await gateway.route(call, target, chat)
    if isinstance(target, CascadeTarget):
        estimate = admission.for_cascade(target.cascade, prompt_tokens, body.max_output_tokens)
        await call.admit(estimate=estimate)
    else:
        await admit(call, prompt_tokens, body.max_output_tokens)
    output = ResponseOutput(RESPONSE_PREFIX + call.request_id, _head(body))
    finish = _Finish(call, body, conversation, output)
    if body.stream and not isinstance(target, CascadeTarget):
        log, options = failover_options(call, route)
        deltas = hops_kept(call, log, target.stream(chat, **options))
        first = await anext(deltas, None)  # a failure before any token keeps its status
        return StreamingResponse(
            _events(finish, deltas, first),
            media_type="text/event-stream",
            headers={**call.headers(), **SSE_HEADERS},
        )
    answer = await _generate(call, target, route, chat)
    generation = answer.generation
    if body.stream:  # a cascade checks whole answers: its stream replays the accepted one
        replay = _replayed(generation)
        return StreamingResponse(
            _events(finish, replay, await anext(replay)),
            media_type="text/event-stream",
            headers={**call.headers(), **SSE_HEADERS},
        )
    if generation.text:
        output.add_text(generation.text)
    if generation.refusal:
        output.add_refusal(generation.refusal)
    output.add_tool_calls(deltas_of(generation.tool_calls or []))
    output.done()
    call.succeed(generation.usage, generation.text)
    response = await finish.stored(generation.finish_reason, generation)
    return json_response(response, call)


async def retrieve(request: Request) -> Response:
    """`GET /v1/responses/{id}`: a stored response, to the key that made it."""
    gateway: Gateway = request.app.state.gateway
    call = request.state.call = gateway.begin("responses")
    await gateway.authenticate(call, request.headers)
    response_id = request.path_params["response_id"]
    stored = await asyncio.to_thread(_store(call).load, response_id, call.entry.key_id)
    if stored is None:
        raise _not_found(response_id, "response_id")
    return Response(orjson.dumps(stored.response), media_type="application/json")


ROUTES = [
    Endpoint("/v1/responses", responses, methods=["POST"]),
    Endpoint("/v1/responses/{response_id}", retrieve, methods=["GET"]),
]


def _not_found(response_id: str, param: str) -> NotFoundError:
    return NotFoundError(
        f"response {response_id!r} was not found (responses are kept only with `store: true`, "
        "and only for the key that made them)",
        param=param,
    )


async def _history(call: Call, body: ResponsesBody) -> list[Message]:
    """The stored conversation `previous_response_id` names (404 if this key cannot see it)."""
    if body.previous_response_id is None:
        return []
    stored = await asyncio.to_thread(
        _store(call).load, body.previous_response_id, call.entry.key_id
    )
    if stored is None:
        raise _not_found(body.previous_response_id, "previous_response_id")
    return stored.conversation


def _store(call: Call) -> ResponsesStore:
    ledger = call.gateway.ledger
    assert ledger is not None, "the gateway opens its ledger before serving"
    return ResponsesStore(ledger.store)


def _head(body: ResponsesBody) -> dict[str, Any]:
    """The response fields that echo the request."""
    fmt = body.format
    return {
        "model": body.model,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "previous_response_id": body.previous_response_id,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "tool_choice": _dump(body.tool_choice) or "auto",
        "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or ()],
        "text": {"format": fmt.model_dump(by_alias=True, exclude_none=True)}
        if fmt is not None
        else {"format": {"type": "text"}},
        "store": body.store,
        "metadata": body.metadata or {},
        "user": body.user,
    }


def _dump(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


async def _generate(call: Call, target: Target, route: Route, chat: ChatRequest) -> Answer:
    """The whole answer; a cascade's hops are all rows, another target's when it took more
    than one step (as on the chat path)."""
    if isinstance(target, CascadeTarget):
        log = HopLog(call.request_id)
        try:
            answer = await target.generate(chat, log=log)
        finally:
            record_hops(call.gateway, call.entry, log.hops)
        call.routed(answer.route.model, answer.route.decision)
        call.spent_usd = answer.cost_usd
        return answer
    log, options = failover_options(call, route)
    try:
        return await target.generate(chat, **options)
    finally:
        passthrough.record_retries(call, log)


async def _replayed(generation: Generation) -> AsyncIterator[Delta]:
    if generation.text:
        yield Delta(text=generation.text)
    if generation.tool_calls:
        yield Delta(tool_calls=deltas_of(generation.tool_calls))
    yield Delta(finish_reason=generation.finish_reason, usage=generation.usage)


class _Finish:
    """Settling a response: the conversation it ends, stored when asked."""

    def __init__(
        self, call: Call, body: ResponsesBody, conversation: list[Message], output: ResponseOutput
    ) -> None:
        self.call, self.body, self.conversation, self.output = call, body, conversation, output

    async def stored(self, finish_reason: str, generation: Generation) -> dict[str, Any]:
        self.output.head["model"] = self.call.entry.model or self.body.model  # who answered
        response = self.output.finished(finish_reason, generation.usage)
        if self.body.store:
            calls = self.output.tool_calls() or None
            reply = Message("assistant", self.output.text, tool_calls=calls)
            await asyncio.to_thread(
                _store(self.call).save,
                self.output.id,
                self.call.request_id,
                self.call.entry.key_id,
                [*self.conversation, reply],
                response,
            )
        return response


async def _events(
    finish: _Finish, deltas: AsyncIterator[Delta], delta: Delta | None
) -> AsyncIterator[bytes]:
    """The stream's events; the ledger row is finished before `response.completed`, a
    failure after the first event is a `response.failed` event, and a client that leaves
    is charged for what it was sent."""
    call, output = finish.call, finish.output
    collected = StreamCollector()
    try:
        yield output.started()
        while delta is not None:
            collected.add_delta(delta)
            if delta.text:
                call.first_token()
                yield output.add_text(delta.text)
            if delta.tool_calls:
                call.first_token()
                yield output.add_tool_calls(delta.tool_calls)
            delta = await anext(deltas, None)
        usage = collected.usage()
        if collected.refusal_parts:  # one whole part: this stream sends no refusal deltas
            yield output.add_refusal("".join(collected.refusal_parts))
        yield output.done()
        call.succeed(usage, collected.text)
        generation = collected.answer(call.entry.model or "")
        yield output.end(await finish.stored(collected.finish_reason or "stop", generation))
    except Exception as exc:
        error = exc if isinstance(exc, SmallfirstError) else UpstreamError(str(exc))
        delivered = admission.delivered_usage(call.estimate, collected.parts)
        call.fail(error, delivered if collected.parts else None)
        failure = {"code": error.error_type, "message": error.message}
        yield output.end(output.response("failed", error=failure))
    finally:
        if not call.finished:
            call.disconnected(
                collected.usage()
                if collected.has_usage
                else admission.delivered_usage(call.estimate, collected.parts)
            )
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()
