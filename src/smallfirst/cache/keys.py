"""A request's exact-cache key: what changes the answer, normalised, hashed.

Fields that only label, bill or shape the delivery (`stream`, `user`, `metadata`, ...) are
left out, so a stream and a plain request share an answer; text content written as a list of
text parts is the same request as that text written as a string.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from smallfirst.wire.fields import METADATA

IGNORED = METADATA | {"stream", "stream_options", "model"}


def normalise(data: dict[str, Any]) -> dict[str, Any]:
    """The body as far as the answer depends on it."""
    out = {name: value for name, value in data.items() if name not in IGNORED and value is not None}
    if isinstance(out.get("messages"), list):
        out["messages"] = [_message(m) for m in out["messages"]]
    return out


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {name: value for name, value in message.items() if value is not None}
    content = out.get("content")
    if isinstance(content, list) and all(_is_text(part) for part in content):
        out["content"] = "".join(part["text"] for part in content)
    return out


def _is_text(part: Any) -> bool:
    return (
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(scope: str, route: str, path: str, data: dict[str, Any]) -> str:
    return f"{scope}|x|{digest([route, path, normalise(data)])}"


def semantic_group(route: str, path: str, data: dict[str, Any]) -> str:
    """Entries a semantic hit may come from: same route, endpoint, system prompt, tools and
    answer-changing parameters; only the last user turn may differ."""
    body = normalise(data)
    messages = body.pop("messages", None)
    body.pop("prompt", None)
    context = None
    if isinstance(messages, list):
        context = [m for m in messages[:-1]]  # system prompt and earlier turns
    return digest([route, path, body, context])
