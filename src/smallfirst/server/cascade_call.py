"""A request whose `model` names a cascade (`cascade-<name>`): run the ladder, record every hop.

The request row carries what the client saw (the accepted answer's tokens) and what the whole
request spent (every answer and check on every rung); each hop becomes a `hop` row under the
same request id, also when the cascade ends in an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.responses import Response

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.hop_rows import hop_entry
from smallfirst.routing.base import RouteDecision
from smallfirst.routing.cascade import CASCADE_PREFIX
from smallfirst.routing.fallback import AnyRequest
from smallfirst.routing.hops import CascadeResult, Hop, HopLog
from smallfirst.server import admission
from smallfirst.server.call import Call
from smallfirst.server.gateway import Gateway
from smallfirst.server.streaming import stream_deltas
from smallfirst.target import CascadeTarget
from smallfirst.types import Delta
from smallfirst.wire.render import completion_json


async def run_cascade(
    gateway: Gateway,
    call: Call,
    target: CascadeTarget,
    request: AnyRequest,
    prompt_tokens: int,
    stream: bool,
    include_usage: bool,
) -> Response:
    """Answer through the cascade; errors propagate to the app's handler after hops are kept."""
    result, deltas = await climb(gateway, call, target, request, prompt_tokens, stream)
    chat = call.entry.endpoint == "chat"
    if deltas is not None:
        return await stream_deltas(call, deltas, chat, include_usage)
    call.succeed(result.generation.usage, result.generation.text, result.generation.tool_calls)
    body = orjson.dumps(completion_json(result.generation, call.request_id, chat=chat))
    return Response(body, media_type="application/json", headers=call.headers())


async def climb(
    gateway: Gateway,
    call: Call,
    target: CascadeTarget,
    request: AnyRequest,
    prompt_tokens: int,
    stream: bool,
) -> tuple[CascadeResult, AsyncIterator[Delta] | None]:
    """Run the ladder for any inbound API: the accepted answer (and, to stream, its deltas),
    with every hop recorded and the request row settled on the model that answered.

    Admission reserves the cascade's worst case (every rung and check may run), since the
    request is charged what all of them spent."""
    cascade = target.cascade
    await gateway.route(call, target, request)  # the first rung, until the ladder settles
    max_tokens = request.params.max_tokens
    await call.admit(estimate=admission.for_cascade(cascade, prompt_tokens, max_tokens))
    log = HopLog(call.request_id)
    deltas: AsyncIterator[Delta] | None = None
    try:
        if stream:
            result, deltas = await cascade.stream(request, log=log)
        else:
            result = await cascade.run(request, log=log)
    finally:
        record_hops(gateway, call.entry, log.hops)
    _settle_route(gateway, call, result)
    if gateway.learning is not None and gateway.learning.shadower is not None:
        gateway.learning.shadower.climbed(call, request, result)  # an escalation is evidence
    return result, deltas


def _settle_route(gateway: Gateway, call: Call, result: CascadeResult) -> None:
    """The request row names the model that answered and charges every hop's spend."""
    final = gateway.registry.get(result.model)
    kept = "kept" if result.verified else "unverified"
    reason = f"{kept} on {final.tier} after {result.escalations} escalation(s)"
    router = CASCADE_PREFIX + (result.cascade or "")
    call.routed(final, RouteDecision(final.name, router, reason))
    call.spent_usd = result.cost_usd


def record_hops(gateway: Gateway, parent: LedgerEntry, hops: list[Hop]) -> None:
    for hop in hops:
        gateway.record(hop_entry(parent, hop))
