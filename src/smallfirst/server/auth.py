"""Who is calling: the API key in `Authorization: Bearer ...` (or `api-key` / `x-api-key`).

Keys are cached in memory and re-read from the database every `REFRESH_S` seconds (so keys
created or revoked by the CLI take effect without a restart) and on an unknown key id, at most
once a second so that guessing ids cannot hammer the database.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.datastructures import Headers

from smallfirst.errors import AuthenticationError, SmallfirstError
from smallfirst.ledger.keys import ApiKey, KeyStore, key_id_of

log = logging.getLogger("smallfirst.server")
REFRESH_S = 5.0
MISS_REFRESH_S = 1.0


def presented_key(headers: Headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("api-key") or headers.get("x-api-key")


class Authenticator:
    def __init__(self, keys: KeyStore, required: bool, refresh_s: float = REFRESH_S) -> None:
        self.keys = keys
        self.required = required
        self.refresh_s = refresh_s
        self._cache: dict[str, ApiKey] = {}
        self._loaded_at = float("-inf")

    async def refresh(self) -> None:
        """Re-read the keys. While the database is unreachable the last known keys keep
        serving (a ledger outage must not lock every client out); with none known, a 503."""
        try:
            keys = await asyncio.to_thread(self.keys.all)
        except Exception as exc:  # SQLAlchemy raises many types for a database that is down
            if self._loaded_at == float("-inf") and not self._cache:
                raise KeysUnavailableError(
                    f"API keys cannot be read: the ledger database is unavailable "
                    f"({type(exc).__name__}); retry shortly",
                    headers={"Retry-After": "1"},
                ) from exc
            log.warning("auth: cannot re-read API keys (%s); using the cached ones", exc)
            self._loaded_at = time.monotonic()  # try again after another refresh period
            return
        self._cache = {key.id: key for key in keys}
        self._loaded_at = time.monotonic()

    def invalidate(self) -> None:
        """Re-read the keys on the next request (after keys were created or revoked here)."""
        self._loaded_at = float("-inf")

    async def authenticate(self, headers: Headers) -> ApiKey | None:
        """The caller's key; None when auth is off and no valid key was sent."""
        if not self.required and not self._cache and not self._stale():
            return None  # no keys exist: nothing to attribute or limit
        presented = presented_key(headers)
        if presented is None:
            if self.required:
                raise AuthenticationError(
                    "Missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>` "
                    "(create one with `smallfirst keys create --name NAME`)"
                )
            return None
        key = await self._lookup(presented)
        if key is None or not key.matches(presented):
            if self.required:
                raise AuthenticationError("Invalid API key")
            return None
        if not key.active:
            raise AuthenticationError(f"API key {key.name!r} ({key.id}) has been revoked")
        return key

    def _age(self) -> float:
        return time.monotonic() - self._loaded_at

    def _stale(self) -> bool:
        return self._age() > self.refresh_s

    async def _lookup(self, presented: str) -> ApiKey | None:
        key_id = key_id_of(presented)
        if key_id is None:
            return None
        if self._stale() or (key_id not in self._cache and self._age() > MISS_REFRESH_S):
            await self.refresh()
        return self._cache.get(key_id)


class KeysUnavailableError(SmallfirstError):
    status = 503
    error_type = "keys_unavailable"
