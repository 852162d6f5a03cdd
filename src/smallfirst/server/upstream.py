"""Pooled aiohttp sessions for the pass-through path to OpenAI-compatible upstreams.

The providers' httpx client is right for library use; on the gateway's hot path aiohttp's C
HTTP parser costs several times less per request, which is most of the gateway's own latency.
Failures map to the same errors as the provider's (`models.http_errors`).
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx

from smallfirst.errors import SmallfirstError, UpstreamTimeoutError
from smallfirst.models.http_errors import UnreachableError, error_for_status
from smallfirst.models.openai import OpenAIProvider, read_api_key

CONNECTIONS = 256


class UpstreamPool:
    """One session (connection pool) per model, made on first use, closed on shutdown."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, provider: OpenAIProvider) -> aiohttp.ClientSession:
        session = self._sessions.get(provider.name)
        if session is None or session.closed:
            headers = {"content-type": "application/json"}
            key = read_api_key(provider.config)
            if key:
                headers["authorization"] = f"Bearer {key}"
            timeout = provider.config.timeout_s
            session = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=min(10.0, timeout), sock_read=timeout
                ),
                connector=aiohttp.TCPConnector(limit=CONNECTIONS, ttl_dns_cache=300),
            )
            self._sessions[provider.name] = session
        return session

    async def post(
        self, provider: OpenAIProvider, path: str, body: bytes
    ) -> aiohttp.ClientResponse:
        """Send; a 4xx/5xx answer or a transport failure raises our error, else the response."""
        try:
            response = await self.session(provider).post(provider.base_url + path, data=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(provider.name, exc) from exc
        if response.status >= 400:
            try:
                content = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                content = b""
            finally:
                response.release()
            raise error_for_status(
                provider.name,
                httpx.Response(response.status, headers=dict(response.headers), content=content),
            )
        return response

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def transport_error(model: str, exc: BaseException) -> SmallfirstError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"upstream model {model!r} timed out ({type(exc).__name__})")
    return UnreachableError(model, exc)
