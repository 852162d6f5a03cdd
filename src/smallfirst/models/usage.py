"""Token counts reported by an upstream, checked before they touch spend, budgets or the ledger.

A count is money: a negative one would refund a key and let it past its budget, a huge one
overflows the database column and loses the row. Every backend that reads usage from a server
goes through `token_count`, so one rule decides what a valid count is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smallfirst.errors import UpstreamError

MAX_TOKENS = 10**9
"""More than any model's context and output together: a count above it is a broken upstream."""


def token_count(raw: Mapping[str, Any], field: str, model: str | None = None) -> int:
    """`raw[field]` as a whole number of tokens from 0 to `MAX_TOKENS` (absent: 0); an integral
    float such as 5.0 is accepted. Anything else is an UpstreamError (502) naming the field."""
    value = raw.get(field)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    raise UpstreamError(
        f"{_source(model)} reported an invalid usage.{field}: {str(value)[:40]!r} "
        f"(a token count is a whole number from 0 to {MAX_TOKENS})"
    )


def usage_object(raw: Any, model: str | None = None) -> Mapping[str, Any]:
    """The usage object of a response (absent: empty); anything but an object is an error."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise UpstreamError(f"{_source(model)} reported usage that is not an object")
    return raw


def _source(model: str | None) -> str:
    return "the upstream" if model is None else f"upstream model {model!r}"
