"""HTTP side of the dashboard: the page, its login form, static assets and JSON endpoints.

`mount_dashboard(app, engine, check_key)` adds everything under `/dashboard` to any Starlette or
FastAPI app; `mount_gateway_dashboard(app, gateway)` does it for the gateway, whose ledger and
authenticator only exist once its lifespan has started. Every endpoint reads the ledger live
for the window in `since` / `until` (from its rollups; raw rows for recent requests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Connection, Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from smallfirst.errors import InvalidRequestError, SmallfirstError
from smallfirst.learning.task_report import policy_text, task_summaries
from smallfirst.server.dashboard import data
from smallfirst.server.dashboard.auth import ALL_ROWS, DashboardAuth, KeyCheck
from smallfirst.server.dashboard.timerange import TimeRange, parse_range

PREFIX = "/dashboard"
MAX_LIMIT = 500
MAX_FORM_BYTES = 4096
KEY_IN_URL = "API keys do not go in URLs (URLs end up in logs); sign in with the form"
STATIC = resources.files("smallfirst.server.dashboard") / "static"


def _limit(request: Request, default: int, name: str = "limit") -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequestError(
            f"{name}: {raw!r} must be a whole number from 1 to {MAX_LIMIT}", param=name
        )
    return int(raw)


def _everything(conn: Connection, span: TimeRange, request: Request) -> dict[str, Any]:
    window = data.cube(conn, span)  # one rollup read for every panel but series and recent
    return {
        "summary": data.summary(conn, span, window),
        "series": data.series(conn, span),
        "routes": data.routes(conn, span, window),
        "latency": data.latency_by_model(conn, span, window),
        "keys": data.top_keys(conn, span, _limit(request, 10, "keys_limit"), window),
        "recent": data.recent(conn, span, _limit(request, 50)),
        "tasks": _tasks(conn, span, request),
    }


def _tasks(conn: Connection, span: TimeRange, request: Request) -> list[dict[str, Any]]:
    """Per task (with `learn:`): volume, spend, tiers, evidence, policy (learning/)."""
    gateway = getattr(request.app.state, "gateway", None)
    config = gateway.config.learn if gateway is not None else None
    found = task_summaries(conn.engine, config, span.since, span.until, key_id=span.key_id)
    return [{**task.as_json(), "policy_text": policy_text(task, config)} for task in found]


Panel = Callable[[Connection, TimeRange, Request], Any]
PANELS: dict[str, Panel] = {
    "summary": lambda conn, span, _r: data.summary(conn, span),
    "series": lambda conn, span, _r: data.series(conn, span),
    "routes": lambda conn, span, _r: data.routes(conn, span),
    "latency": lambda conn, span, _r: data.latency_by_model(conn, span),
    "keys": lambda conn, span, r: data.top_keys(conn, span, _limit(r, 10)),
    "recent": lambda conn, span, r: data.recent(conn, span, _limit(r, 50)),
    "tasks": _tasks,
    "all": _everything,
}


class DashboardEndpoints:
    """The handlers, sharing one engine and one auth policy."""

    def __init__(self, engine: Callable[[], Engine | None], auth: DashboardAuth) -> None:
        self.engine = engine
        self.auth = auth

    async def api(self, request: Request) -> Response:
        try:
            scope = await self.auth.require(request)
            panel = PANELS.get(request.path_params["panel"])
            if panel is None:
                names = ", ".join(sorted(PANELS))
                raise UnknownPanelError(f"no dashboard panel by that name; try {names}")
            body = await run_in_threadpool(self._read, panel, request, scope)
        except SmallfirstError as exc:
            return _error(exc)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def _read(self, panel: Panel, request: Request, scope: str) -> Any:
        params = request.query_params
        if "key" in params:
            raise InvalidRequestError(
                KEY_IN_URL + "; send 'Authorization: Bearer <key>' instead", param="key"
            )
        engine = self.engine()
        if engine is None:
            raise LedgerUnavailableError("the ledger is not open yet (is the gateway starting?)")
        with engine.connect() as conn:
            earliest = data.earliest(conn) if params.get("since", "").lower() == "all" else None
            span = parse_range(
                params.get("since"), params.get("until"), now=time.time(), earliest=earliest
            )
            if scope != ALL_ROWS:
                span = replace(span, key_id=scope)
            return panel(conn, span, request)

    async def page(self, request: Request) -> Response:
        if "key" in request.query_params:
            return _login_page(request, error=KEY_IN_URL)
        if not await self.auth.is_signed_in(request):
            return _login_page(request, error=None)
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(
            html.replace("{{prefix}}", _prefix(request)).replace(
                "{{auth}}", "on" if self.auth.enabled else "off"
            ),
            headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
        )

    async def login(self, request: Request) -> Response:
        key = await _form_key(request)
        response = RedirectResponse(_prefix(request), status_code=303)
        if not self.auth.enabled:
            return response
        if await self.auth.sign_in(key, response, secure=request.url.scheme == "https"):
            return response
        return _login_page(request, error="That key is not valid.", status=401)

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(_prefix(request), status_code=303)
        self.auth.sign_out(request, response)
        return response


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _form_key(request: Request) -> str:
    """The `key` field of the sign-in form (urlencoded; parsed here to need no extra package)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return ""
    values = parse_qs(body.decode("utf-8", errors="replace")).get("key") or [""]
    return values[0]


def _prefix(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/") + PREFIX


def _error(exc: SmallfirstError) -> JSONResponse:
    return JSONResponse(exc.to_openai(), status_code=exc.status, headers=exc.headers)


def _login_page(request: Request, error: str | None, status: int = 200) -> HTMLResponse:
    html = (STATIC / "login.html").read_text(encoding="utf-8")
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    html = html.replace("{{prefix}}", _prefix(request)).replace("{{error}}", message)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS})


class UnknownPanelError(InvalidRequestError):
    status = 404
    code = "not_found"


class LedgerUnavailableError(SmallfirstError):
    status = 503
    error_type = "ledger_unavailable"


EngineSource = Engine | Callable[[], Engine | None]
KeySource = KeyCheck | Callable[[], KeyCheck | None] | None


def _source(value: Any) -> Callable[[], Any]:
    """Accept a value or a zero-argument function returning it (read on every request)."""
    return value if callable(value) else (lambda: value)


def dashboard_routes(
    engine: EngineSource, check_key: KeySource = None, auth: DashboardAuth | None = None
) -> list[BaseRoute]:
    """The routes to add to an app; auth follows `check_key` (None: open, like auth off)."""
    auth = auth or DashboardAuth(_source(check_key), cookie_path=PREFIX)
    endpoints = DashboardEndpoints(_source(engine), auth)
    in_schema = False  # the browser UI: a page and its form, not in /openapi.json
    return [
        Route(PREFIX, endpoints.page, methods=["GET"], include_in_schema=in_schema),
        Route(
            PREFIX + "/",
            lambda r: RedirectResponse(_prefix(r), status_code=307),
            include_in_schema=in_schema,
        ),
        Route(PREFIX + "/login", endpoints.login, methods=["POST"], include_in_schema=in_schema),
        Route(PREFIX + "/logout", endpoints.logout, methods=["POST"], include_in_schema=in_schema),
        Route(PREFIX + "/api/{panel}", endpoints.api, methods=["GET"], include_in_schema=in_schema),
        Mount(PREFIX + "/static", StaticFiles(directory=str(STATIC)), name="dashboard-static"),
    ]


def mount_dashboard(
    app: Starlette, engine: EngineSource, check_key: KeySource = None, **auth: Any
) -> None:
    """Serve the dashboard from `app`, reading the ledger through `engine`; `auth` options
    (`admin_token`, `own_rows_only`) go to `DashboardAuth`."""
    policy = DashboardAuth(_source(check_key), cookie_path=PREFIX, **auth) if auth else None
    app.router.routes.extend(dashboard_routes(engine, check_key, policy))


def mount_gateway_dashboard(app: Starlette, gateway: Any) -> None:
    """Serve the dashboard from the gateway app, with the gateway's ledger and API keys."""

    def engine() -> Engine | None:
        return gateway.ledger.store.engine if gateway.ledger is not None else None

    mount_dashboard(
        app,
        engine,
        lambda: gateway.auth,
        admin_token=lambda: gateway.admin_token,
        own_rows_only=True,
    )
