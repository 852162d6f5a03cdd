"""The OpenAI-compatible gateway as a Starlette app (plain Starlette: less work per request).

`create_app()` builds it without I/O; the lifespan opens the ledger and, on shutdown, flushes
it so no row is lost. Errors anywhere become OpenAI-shaped JSON with the right status.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from smallfirst.config import Config
from smallfirst.errors import AuthenticationError, SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.pipeline.catalog import PipelineCatalog
from smallfirst.server.auth import presented_key
from smallfirst.server.chat import chat_completions, completions
from smallfirst.server.dashboard import mount_gateway_dashboard
from smallfirst.server.edge_limits import BodyTimeout
from smallfirst.server.embeddings import embeddings, local_model_card
from smallfirst.server.feedback_endpoint import ROUTES as FEEDBACK_ROUTES
from smallfirst.server.gateway import Gateway
from smallfirst.server.limits import Limiter
from smallfirst.server.messages_endpoint import messages
from smallfirst.server.metrics import CONTENT_TYPE
from smallfirst.server.openapi import openapi_json
from smallfirst.server.pipelines_endpoint import mount_pipelines
from smallfirst.server.responses_endpoint import ROUTES as RESPONSES_ROUTES
from smallfirst.server.tasks_endpoint import mount_tasks
from smallfirst.tasks.catalog import TaskCatalog

log = logging.getLogger("smallfirst.server")


def create_app(
    config: Config | None = None,
    *,
    registry: Registry | None = None,
    ledger_url: str | None = None,
    auth: bool | None = None,
    limiter: Limiter | None = None,
    preload: bool = False,
) -> Starlette:
    gateway = Gateway(
        config,
        registry=registry,
        ledger_url=ledger_url,
        auth=auth,
        limiter=limiter,
        preload=preload,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            *RESPONSES_ROUTES,
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
            *FEEDBACK_ROUTES,
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
        ],
        exception_handlers={
            SmallfirstError: smallfirst_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
        middleware=[Middleware(BodyTimeout, timeout_s=gateway.config.server.body_timeout_s)],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    mount_gateway_dashboard(app, gateway)
    mount_tasks(app, TaskCatalog(gateway.config))
    mount_pipelines(app, PipelineCatalog(gateway.config))
    return app


def error_response(error: SmallfirstError, request: Request) -> Response:
    call = getattr(request.state, "call", None)
    headers = dict(error.headers)
    if call is not None:
        if not call.finished:
            call.fail(error)
        headers.update(call.headers())
    return Response(
        orjson.dumps(error.to_openai()),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


async def smallfirst_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmallfirstError)
    return error_response(exc, request)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 in the OpenAI shape; under /v1 also a ledger row (endpoint
    `other`: paths are the client's choice, so they are not a metrics label)."""
    assert isinstance(exc, HTTPException)
    path = request.url.path
    error = SmallfirstError(
        f"{request.method[:16]} {path[:200]}: {exc.detail}", headers=exc.headers
    )
    error.status = exc.status_code
    error.error_type = "invalid_request_error"
    if (path == "/v1" or path.startswith("/v1/")) and getattr(request.state, "call", None) is None:
        gateway: Gateway = request.app.state.gateway
        call = request.state.call = gateway.begin("other")
        # Attribute the row to a valid key; an invalid one does not turn a 404 into a 401.
        with suppress(SmallfirstError):
            await gateway.authenticate(call, request.headers)
    return error_response(error, request)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    error = SmallfirstError(f"internal error: {type(exc).__name__}: {exc}")
    return error_response(error, request)


async def list_models(request: Request) -> Response:
    """Needs a key when auth is on (a refusal is a ledger row; a listing is not)."""
    gateway: Gateway = request.app.state.gateway
    call = request.state.call = gateway.begin("models")
    await gateway.authenticate(call, request.headers)
    created = int(time.time())
    data: list[dict[str, Any]] = [
        {
            "id": entry.name,
            "object": "model",
            "created": created,
            "owned_by": "smallfirst",
            "tier": entry.tier,
            "backend": entry.config.backend,
        }
        for entry in gateway.registry.by_tier()
    ]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": "smallfirst-router"}
        for name in gateway.router_names()
    ]
    data.append({**local_model_card(), "created": created})
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def health(request: Request) -> Response:
    """Open to all, for load balancers; with auth on only the status, unless the caller
    presents the admin token (the models and settings are not for anonymous callers)."""
    gateway: Gateway = request.app.state.gateway
    body: dict[str, Any] = {"status": "ok"}
    if not gateway.auth_required or is_admin(gateway, request):
        body |= {
            "models": gateway.registry.names(),
            "default_model": gateway.registry.default_model,
            "auth": gateway.auth_required,
            "ledger": gateway.ledger is not None,
        }
    return Response(orjson.dumps(body), media_type="application/json")


async def metrics(request: Request) -> Response:
    """With auth on only for the admin token: the counters cover every key's traffic and $."""
    gateway: Gateway = request.app.state.gateway
    if gateway.auth_required and not is_admin(gateway, request):
        raise AuthenticationError(
            "with auth on, /metrics needs the admin token ($SMALLFIRST_ADMIN_TOKEN) as "
            "`Authorization: Bearer <token>`"
        )
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)


def is_admin(gateway: Gateway, request: Request) -> bool:
    token, presented = gateway.admin_token, presented_key(request.headers)
    if not token or not presented:
        return False
    return hmac.compare_digest(presented.encode(), token.encode())
