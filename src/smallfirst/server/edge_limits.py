"""Limits at the edge, before a request reaches the gateway: header size, header and body read
times, and open connections in all and per client IP (`server:` in smallfirst.yaml).

uvicorn runs on httptools (several times cheaper per request than h11), which has no cap on
header size, and uvicorn has no header read timeout; a small subclass of its httptools protocol
adds both and the per-client connection cap. uvicorn's own options bound the total
(`limit_concurrency`) and idle keep-alive time. The body timeout is an ASGI middleware, so its
408 is an ordinary gateway error with a ledger row. `uvicorn_options()` is what `smallfirst
serve` and the tests' `BackgroundServer` both start uvicorn with.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from smallfirst.config import ServerConfig
from smallfirst.errors import RateLimitError, SmallfirstError

log = logging.getLogger("smallfirst.server")


class RequestTimeoutError(SmallfirstError):
    status = 408
    error_type = "invalid_request_error"
    code = "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class HeadersTooLargeError(SmallfirstError):
    status = 431
    error_type = "invalid_request_error"
    code = "request_header_fields_too_large"


class TooManyConnectionsError(RateLimitError):
    code = "too_many_connections"


class OverloadedError(SmallfirstError):
    status = 503
    error_type = "server_error"
    code = "overloaded"


class ClientClosedError(SmallfirstError):
    """The client went away before its request was read; recorded as a 499, no traceback."""

    status = 499
    error_type = "client_closed"


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """The uvicorn.Config / uvicorn.run options that enforce `server`'s edge limits."""
    return {
        "http": edge_protocol(server),
        "ws": "none",  # no WebSocket routes; an upgrade would bypass the per-client count
        "limit_concurrency": server.max_connections,
        "timeout_keep_alive": server.keep_alive_s,
    }


def edge_protocol(server: ServerConfig) -> type[EdgeProtocol]:
    """A protocol class of its own per server, so that its per-client counts are its own."""
    return type("EdgeProtocol", (EdgeProtocol,), {"settings": server, "per_client": Counter()})


def refusal(error: SmallfirstError) -> Any:
    """An ASGI app answering `error` in the OpenAI shape and closing the connection."""
    body = orjson.dumps(error.to_openai())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]

    async def app(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus: headers bounded in size and in time, at most
    `max_connections_per_client` open connections per client IP, and uvicorn's
    `limit_concurrency` refusal in the OpenAI shape.

    The header clock runs from the connect, and on a kept-alive connection from the previous
    answer, until the next request's headers are complete. A connection that sent nothing in
    that time is closed quietly (it was idle); one that sent part of a request gets a 408.
    """

    settings: ClassVar[ServerConfig]
    per_client: ClassVar[Counter[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        """Bytes received since the current request began, until its headers are complete."""
        self._awaiting_headers = True
        self._client_ip: str | None = None
        self._max_connections, self.limit_concurrency = self.limit_concurrency, None
        """uvicorn's check is done in `on_headers_complete` instead, with a JSON 503."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client is not None:
            self._client_ip = ip = self.client[0]
            self.per_client[ip] += 1
            cap = self.settings.max_connections_per_client
            if cap is not None and self.per_client[ip] > cap:
                log.warning("edge: %s has more than %d open connections; refusing", ip, cap)
                self.app = refusal(
                    TooManyConnectionsError(
                        f"more than {cap} open connections from one client "
                        "(server.max_connections_per_client)",
                        retry_after=1,
                    )
                )
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        if self._client_ip is not None:
            self.per_client[self._client_ip] -= 1
            if self.per_client[self._client_ip] <= 0:
                del self.per_client[self._client_ip]
            self._client_ip = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting = self._awaiting_headers
        if counting:
            self._header_bytes += len(data)
        super().data_received(data)
        limit = self.settings.max_header_bytes
        if counting and self._awaiting_headers and self._header_bytes > limit:
            # Headers still incomplete past the cap: refuse before buffering any more.
            self._refuse(HeadersTooLargeError(_too_large(limit)))

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._disarm_header_timer()
        error = self._refusal()
        if error is None:
            super().on_headers_complete()
            return
        app, self.app = self.app, refusal(error)
        try:  # answer this one request with the error, then close
            super().on_headers_complete()
        finally:
            self.app = app

    def _refusal(self) -> SmallfirstError | None:
        limit = self.settings.max_header_bytes
        if self._header_size() > limit:  # complete within one read, but over the cap
            return HeadersTooLargeError(_too_large(limit))
        most = self._max_connections
        if most is not None and (len(self.connections) >= most or len(self.tasks) >= most):
            log.warning("edge: more than %d connections or requests in flight; refusing", most)
            return OverloadedError(
                f"the gateway is at its limit of {most} connections (server.max_connections); "
                "retry shortly",
                headers={"Retry-After": "1"},
            )
        return None

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # what arrives next is the next request

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # a queued request's headers are already in
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_header_timer()

    def _header_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(
            self.settings.header_timeout_s, self._header_timeout
        )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not (self._awaiting_headers and self._header_bytes):
            self.transport.close()  # idle, or the tail of an answered request's body
            return
        self._refuse(
            RequestTimeoutError(
                f"the request headers did not arrive within {self.settings.header_timeout_s:g} s "
                "(server.header_timeout_s)"
            )
        )

    def _refuse(self, error: SmallfirstError) -> None:
        """Answer `error` straight on the socket (no request cycle is running) and close."""
        log.warning("edge: %s: %s", self._client_ip, error.message)
        body = orjson.dumps(error.to_openai())
        head = (
            b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(STATUS_LINE[error.status] + head + body)
        self.transport.close()


def _too_large(limit: int) -> str:
    return f"the request headers exceed {limit} bytes (server.max_header_bytes)"


class BodyTimeout:
    """ASGI middleware: the whole body must arrive within `timeout_s` of the request reaching
    the app, or the read raises a 408 (`RequestTimeoutError`) where the app awaits it."""

    def __init__(self, app: Any, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_done = False

        async def timed_receive() -> Any:
            nonlocal body_done
            if body_done:  # afterwards receive() only waits for a disconnect: no deadline
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the request body did not arrive within {self.timeout_s:g} s "
                    "(server.body_timeout_s)"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, timed_receive, send)
