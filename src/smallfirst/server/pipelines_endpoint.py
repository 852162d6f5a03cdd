"""`POST /v1/pipelines/{name}`: run a configured pipeline on one document through the gateway.

Body: `{"input": "..."}`. Authenticated, budgeted and rate-limited like a chat call; the ledger
gets one request row (the client's totals) and one hop row per step under its request id.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smallfirst.models.registry import ModelEntry, Registry
from smallfirst.pipeline import Pipeline
from smallfirst.pipeline.catalog import PipelineCatalog
from smallfirst.pipeline.pipeline import priciest_step, step_hops
from smallfirst.routing.base import is_router_name
from smallfirst.server.chat import json_response, start_call
from smallfirst.wire.schemas import validate

PIPELINES_PATH = "/v1/pipelines/{name}"


class PipelineBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(min_length=1)


async def run_pipeline(request: Request) -> Response:
    gateway, call, data = await start_call(request, "pipeline")
    catalog: PipelineCatalog = request.app.state.pipelines
    name = request.path_params["name"]
    pipeline = catalog.get(name)
    body = validate(PipelineBody, data)
    call.entry.requested_model = f"pipeline:{name}"
    if gateway.log_prompts:
        call.entry.prompt = body.input
    registry = gateway.registry
    call.routed(dearest_model(pipeline, registry), None)  # admission reserves at its price
    await call.admit(len(body.input), sum(s.max_tokens for s in pipeline.spec.steps))
    result = await pipeline.run(body.input, registry=registry, request_id=call.request_id)
    top = priciest_step(result)
    if top is not None:
        call.entry.model, call.entry.tier = top.model, top.tier
    call.spent_usd = result.cost_usd
    for hop in step_hops(call.entry, result, registry):
        gateway.record(hop)
    call.succeed(result.usage)
    return json_response(result.to_dict(), call)


def dearest_model(pipeline: Pipeline, registry: Registry) -> ModelEntry:
    """The priciest configured model the steps name (routers and `default` count as default)."""
    names = {registry.default_model}
    for step in pipeline.spec.steps:
        names |= {m for m in (step.model, step.escalate_to) if m and not is_router_name(m)}
        if pipeline.spec.escalates(step):  # a failed piece may go up to the top tier
            names.add(registry.by_tier()[-1].name)
    return max((registry.get(n) for n in names), key=lambda e: e.price.output_per_mtok)


def mount_pipelines(app, catalog: PipelineCatalog) -> None:
    """Add the endpoint to a gateway app (one whose `state.gateway` is a `Gateway`)."""
    app.state.pipelines = catalog
    app.router.routes.append(Route(PIPELINES_PATH, run_pipeline, methods=["POST"]))
