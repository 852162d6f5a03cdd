"""Who may see the dashboard: the same API keys as the gateway.

Scripts send `Authorization: Bearer <key>`. A browser signs in once through a form (POST, so the
key never lands in a URL, a proxy log or the browser history) and gets a random session cookie
(HttpOnly, SameSite=Strict); the key itself never goes into the cookie or a log.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from smallfirst.errors import AuthenticationError


class KeyCheck(Protocol):
    """The gateway's authenticator (`smallfirst.server.auth.Authenticator`)."""

    required: bool

    async def authenticate(self, headers: Headers) -> Any: ...


COOKIE = "smallfirst_dashboard"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 10_000


ALL_ROWS = "*"
"""The scope of a caller who may see every key's rows (auth off, the admin token, or a
dashboard not limited to the caller's own rows)."""


class DashboardAuth:
    """Bearer keys and browser sessions; open to all when the gateway runs without auth.

    With `own_rows_only` (the gateway's dashboard) a client key sees only its own requests, so
    one team cannot read another's traffic; the admin token (`admin_token()`) sees everything.
    """

    def __init__(
        self,
        check: Callable[[], KeyCheck | None],
        cookie_path: str = "/dashboard",
        admin_token: Callable[[], str | None] = lambda: None,
        own_rows_only: bool = False,
    ) -> None:
        self._check = check
        self.cookie_path = cookie_path
        self._admin_token = admin_token
        self.own_rows_only = own_rows_only
        self._sessions: dict[str, tuple[float, str]] = {}
        """token -> (expiry, key). The key stays in memory only, so that a revoked key also
        ends its sessions: every request re-checks it through the gateway's key cache."""

    @property
    def check(self) -> KeyCheck | None:
        """Read on each request: the gateway creates its authenticator when it starts."""
        return self._check()

    @property
    def enabled(self) -> bool:
        check = self.check
        return check is not None and check.required

    async def scope(self, request: Request) -> str | None:
        """Whose rows the caller may see: ALL_ROWS, one key id, or None when not signed in."""
        if not self.enabled:
            return ALL_ROWS
        if _has_key_header(request.headers):
            return await self._scope(request.headers)
        token = request.cookies.get(COOKIE) or ""
        session = self._sessions.get(token)
        if session is None:
            return None
        expires, key = session
        scope = await self._scope(_bearer_headers(key)) if expires >= time.time() else None
        if scope is None:
            self._sessions.pop(token, None)
        return scope

    async def is_signed_in(self, request: Request) -> bool:
        return await self.scope(request) is not None

    async def require(self, request: Request) -> str:
        """The caller's scope; a 401 for the JSON API when neither a valid key nor a session is
        presented."""
        scope = await self.scope(request)
        if scope is None:
            raise AuthenticationError(
                "sign in at /dashboard or send 'Authorization: Bearer <API key>'"
            )
        return scope

    async def sign_in(self, key: str, response: Response, secure: bool) -> bool:
        """Check a key from the login form; on success attach a fresh session cookie."""
        key = key.strip()
        if not key or await self._scope(_bearer_headers(key)) is None:
            return False
        self._prune()
        token = secrets.token_urlsafe(32)
        self._sessions[token] = (time.time() + SESSION_TTL_S, key)
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_TTL_S,
            path=self.cookie_path,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return True

    def sign_out(self, request: Request, response: Response) -> None:
        self._sessions.pop(request.cookies.get(COOKIE) or "", None)
        response.delete_cookie(COOKIE, path=self.cookie_path)

    async def _scope(self, headers: Headers) -> str | None:
        admin = self._admin_token()
        presented = _presented(headers)
        if admin and presented and hmac.compare_digest(presented.encode(), admin.encode()):
            return ALL_ROWS
        check = self.check
        if check is None:
            return None
        try:
            key = await check.authenticate(headers)
        except AuthenticationError:
            return None
        if key is None:
            return None
        return key.id if self.own_rows_only else ALL_ROWS

    def _prune(self) -> None:
        now = time.time()
        for token in [t for t, (expires, _) in self._sessions.items() if expires < now]:
            del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))


def _has_key_header(headers: Headers) -> bool:
    return any(name in headers for name in ("authorization", "api-key", "x-api-key"))


def _presented(headers: Headers) -> str | None:
    auth = headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("api-key") or headers.get("x-api-key")


def _bearer_headers(key: str) -> Headers:
    return Headers({"authorization": f"Bearer {key}"})
