"""`POST /v1/tasks/{name}`: run a configured task on one input through the gateway.

Body: `{"input": "...", "model": "auto" (optional), "context": ["..."] (answer tasks)}`.
The call is authenticated, routed, rate-limited and written to the ledger like a chat call,
and fails over like one: each retry and fallback is a hop row, a fallback is tried only if it
fits the key's reservation, and the request row names (and is priced at) the model that
answered. Output that fails its check after the repair turn is a 502 still charged for every
call made, the repair turn included: the upstream billed them. The answer is the task's
typed result as JSON (label + confidence, fields, text).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smallfirst.routing.resilience import failover_scope
from smallfirst.server import passthrough
from smallfirst.server.call import Call
from smallfirst.server.chat import failover_options, json_response, start_call
from smallfirst.tasks.catalog import TaskCatalog
from smallfirst.tasks.output import TaskOutputError
from smallfirst.tasks.results import Attempt
from smallfirst.types import ChatRequest, Message
from smallfirst.wire.schemas import validate

TASKS_PATH = "/v1/tasks/{name}"


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)
    """A configured model or router name; default the task's `model`, else `default`."""
    context: list[str] | None = None
    """Passages for an `answer` task (instead of its configured context)."""


async def run_task(request: Request) -> Response:
    gateway, call, data = await start_call(request, "tasks")
    catalog: TaskCatalog = request.app.state.tasks
    task = catalog.get(request.path_params["name"])
    body = validate(TaskBody, data)
    if gateway.log_prompts:
        call.entry.prompt = body.input
    requested = body.model or task.spec.model or "default"
    probe = ChatRequest([Message("user", body.input)])
    if gateway.learning is not None:  # the task endpoint's name is the task
        name = request.path_params["name"]
        probe.task = call.entry.task = gateway.learning.task_of(data, request.headers, name)
    route = await gateway.route(call, gateway.resolve(call, requested), probe)
    await call.admit(len(body.input), task.spec.max_tokens)
    log, options = failover_options(call, route)
    with failover_scope(log, options["allow"], options["on_model"]):
        try:
            result = await task.run(
                body.input,
                model=route.model.name,
                registry=gateway.registry,
                context=list(body.context) if body.context is not None else None,
            )
        except TaskOutputError as failure:  # the upstream billed every call: so is the key
            charge_tries(call, failure.tries)
            call.fail(failure, failure.usage)
            raise
        finally:
            passthrough.record_retries(call, log)
    charge_tries(call, result.tries)
    call.succeed(result.usage, result.raw)
    payload = result.to_dict()
    payload["router"] = call.entry.router
    return json_response(payload, call)


def charge_tries(call: Call, tries: list[Attempt]) -> None:
    """The row names the model that wrote the last output (a fallback, when one answered)
    and is charged what every call cost, each at its own model's rates."""
    if tries:
        call.routed(call.gateway.registry.get(tries[-1].model), None)
        call.spent_usd = sum(attempt.cost_usd for attempt in tries)


def mount_tasks(app, catalog: TaskCatalog) -> None:
    """Add the endpoint to a gateway app (one whose `state.gateway` is a `Gateway`)."""
    app.state.tasks = catalog
    app.router.routes.append(Route(TASKS_PATH, run_task, methods=["POST"]))
