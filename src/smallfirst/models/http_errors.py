"""Map an upstream HTTP failure to our error hierarchy, keeping the upstream's own message.

A transport failure (refused, reset, DNS) tells the client only which model is unreachable:
why (host, port, errno) is internal, so it goes to the log and the ledger row (`detail`).
"""

from __future__ import annotations

import logging

import httpx

from smallfirst.errors import (
    ContextLengthError,
    InvalidRequestError,
    RateLimitError,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeoutError,
)

log = logging.getLogger("smallfirst.models")


class UnreachableError(UpstreamError):
    """A 502 whose message names the model only; `detail` is never sent to a client."""

    def __init__(self, model: str, exc: BaseException) -> None:
        super().__init__(f"upstream model {model!r} is unreachable")
        self.detail = f"{type(exc).__name__}: {exc}"
        log.warning("upstream model %r is unreachable: %s", model, self.detail)


def upstream_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    return str(body)[:500]


def error_for_status(model: str, response: httpx.Response) -> SmallfirstError:
    status = response.status_code
    message = f"upstream model {model!r} answered {status}: {upstream_message(response)}"
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimitError(message, retry_after=retry_after)
    if status in (400, 422):
        if "context" in message.lower() and "length" in message.lower():
            return ContextLengthError(message)
        return InvalidRequestError(message)
    if status in (408, 504):
        return UpstreamTimeoutError(message, upstream_status=status)
    return UpstreamError(message, upstream_status=status)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for_exception(model: str, exc: httpx.HTTPError) -> SmallfirstError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream model {model!r} timed out ({type(exc).__name__})")
    return UnreachableError(model, exc)
