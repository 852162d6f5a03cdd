"""One exception hierarchy for the whole package.

Every error knows the HTTP status and the OpenAI error body it maps to, so the gateway,
the CLI and library callers all report the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SmallfirstError(Exception):
    """Base class. `status` and `error_type` follow the OpenAI error conventions."""

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})

    def to_openai(self) -> dict[str, Any]:
        """The body an OpenAI client expects: `{"error": {...}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(SmallfirstError):
    status = 400
    error_type = "invalid_request_error"


class ContextLengthError(InvalidRequestError):
    code = "context_length_exceeded"


class SchemaError(InvalidRequestError):
    """A JSON schema that cannot be enforced (bad schema, or unsupported by the grammar)."""

    code = "invalid_json_schema"


class ConfigError(SmallfirstError):
    """A problem in smallfirst.yaml or another user-given file; the message names the place."""

    status = 500
    error_type = "configuration_error"


class AuthenticationError(SmallfirstError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(SmallfirstError):
    status = 403
    error_type = "permission_error"


class ModelNotFoundError(SmallfirstError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class NotFoundError(SmallfirstError):
    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class PayloadTooLargeError(SmallfirstError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimitError(SmallfirstError):
    """429. `retry_after` (seconds) is sent back as the Retry-After header."""

    status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(max(1, round(retry_after + 0.4999))))


class BudgetExceededError(RateLimitError):
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(SmallfirstError):
    """The model behind us failed (5xx, bad response, connection reset)."""

    status = 502
    error_type = "upstream_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status


class UpstreamTimeoutError(UpstreamError):
    status = 504
    error_type = "timeout_error"


class DeferredError(SmallfirstError):
    """A tier-0 student declined to answer: its confidence is below its calibrated threshold.

    Not a failure of the request: a cascade treats it as "escalate to the next rung".
    """

    status = 422
    error_type = "deferred"
    code = "student_deferred"

    def __init__(
        self, message: str, *, confidence: float, threshold: float, label: str, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.confidence = confidence
        self.threshold = threshold
        self.label = label


class ModelLoadError(SmallfirstError):
    """A local model could not be loaded (missing file, bad GGUF, missing optional package)."""

    status = 503
    error_type = "model_unavailable"
