"""Every chat request field, and what the gateway does with it.

A field is honoured on every path, kept as metadata (it never changes the answer), or
forwarded as is to an OpenAI-compatible upstream, which honours it; on any other path (the
embedded model, Anthropic, a cascade, a replay model) a forwarded-only field would be
dropped, which would change what the request means, so it is a 400 naming the field. The
same holds inside the messages, which such a path rebuilds from ours: a message or content
part field `Message` does not keep, or a key inside a part's own object, is a 400 naming its
path (`messages[0].foo`, `messages[0].content[1].image_url.foo`).
The README's field table is checked against this module by a test.
"""

from __future__ import annotations

from typing import Any

from smallfirst.errors import InvalidRequestError

HONOURED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "stream",
        "stream_options",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
    }
)
"""On every path (`n` only as 1: more choices are a 400)."""

METADATA = frozenset(
    {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
    | {"prompt_cache_options", "prompt_cache_retention"}
)
"""Accepted everywhere; they label or bill the request and never change the answer (an
OpenAI-compatible upstream receives them too)."""

FORWARDED = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "audio",
        "modalities",
        "prediction",
        "reasoning_effort",
        "verbosity",
        "web_search_options",
        "functions",
        "function_call",
        "moderation",
    }
)
"""Honoured by an OpenAI-compatible upstream reached by pass-through; a 400 elsewhere."""

COMPLETION_HONOURED = frozenset(
    {"model", "prompt", "max_tokens", "temperature", "top_p", "stop", "seed", "n", "stream"}
    | {"stream_options", "logprobs"}
)
"""`/v1/completions` on every path (`echo`, `suffix`, `best_of`, ... only by pass-through)."""


MESSAGE_CARRIED = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
"""What a message keeps on every path (our `Message`)."""

MESSAGE_FORWARDED = frozenset({"refusal", "audio", "function_call"})
"""Documented on an OpenAI message, carried only by pass-through (they validate everywhere,
and null, as the SDK writes an answer back into the conversation, carries nothing)."""

PART_CARRIED = {
    "text": frozenset({"type", "text"}),
    "image_url": frozenset({"type", "image_url"}),
    "input_audio": frozenset({"type", "input_audio"}),
    "file": frozenset({"type", "file"}),
}
"""The content part types every path reads, and the fields each keeps."""

PART_INNER_CARRIED = {
    "image_url": frozenset({"url", "detail"}),
    "input_audio": frozenset({"data", "format"}),
    "file": frozenset({"file_id", "file_data", "filename"}),
}
"""The keys kept inside a part's own object (`image_url: {url, detail}`): any other is dropped
off the pass-through as surely as a part's own field would be."""

PART_FORWARDED = frozenset({"refusal"})
"""Documented part types carried only by pass-through (an assistant's `refusal` part)."""

CALL_CARRIED = frozenset({"id", "type", "function"})
FUNCTION_CARRIED = frozenset({"name", "arguments"})

ONLY_FORWARDED = "is only honoured"
UNKNOWN = "is unknown here; it would be sent"


IN_PROCESS = "smallfirst.Client"


def refuse_unforwardable(
    data: dict[str, Any],
    model: str | None,
    honoured: frozenset[str] = HONOURED,
    caller: str = IN_PROCESS,
) -> None:
    """The 400 for a field only pass-through can honour, on a path without pass-through:
    at the top level, then inside the messages (which such a path rebuilds from ours).
    `model`: the model answering; None where `caller` (`smallfirst batch`) never passes
    through."""
    for name in data:
        if name not in honoured and name not in METADATA:
            kind = ONLY_FORWARDED if name in FORWARDED else UNKNOWN
            raise InvalidRequestError(
                f"{name} {kind} by pass-through to an OpenAI-compatible model, and "
                f"{_then(name, model, caller)}",
                param=name,
            )
    messages = data.get("messages")
    if isinstance(messages, list):
        refuse_uncarried(messages, model, caller)


def refuse_uncarried(
    messages: list[Any], model: str | None = None, caller: str = IN_PROCESS
) -> None:
    """The 400 for the first field inside `messages` that our `Message` cannot carry (one
    not null or empty), named by its path (`messages[0].foo`). `model`: the model answering;
    None for in-process calls (`smallfirst.Client`, `smallfirst batch`: `caller`), which
    never pass through."""
    found = uncarried(messages)
    if found is None:
        return
    subject, param, kind = found
    raise InvalidRequestError(
        f"{subject} {kind} by pass-through to an OpenAI-compatible model, and "
        f"{_then(param, model, caller)}",
        param=param,
    )


def _then(param: str, model: str | None, caller: str) -> str:
    if model is None:
        return f"{caller} never passes through: leave it out, or ask through the gateway"
    return (
        f"this request is answered by {model!r}, which cannot honour it: send it to such a "
        f"model, or leave {param} out"
    )


def uncarried(messages: list[Any]) -> tuple[str, str, str] | None:
    """(what to call it, its path, `ONLY_FORWARDED` or `UNKNOWN`) for the first field of
    `messages` that a path rebuilding them from ours would drop; None when there is none.
    Entries that are not dicts (`Message` objects) carry nothing more."""
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        found = _extra(message, MESSAGE_CARRIED, MESSAGE_FORWARDED, where)
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            found = found or _part_extra(part, f"{where}.content[{j}]")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for k, call in enumerate(calls if isinstance(calls, list) else ()):
            at = f"{where}.tool_calls[{k}]"
            found = found or _extra(call, CALL_CARRIED, frozenset(), at)
            function = call.get("function") if isinstance(call, dict) else None
            found = found or _extra(function, FUNCTION_CARRIED, frozenset(), f"{at}.function")
        if found is not None:
            return found
    return None


def _part_extra(part: Any, where: str) -> tuple[str, str, str] | None:
    """A part of a type no other path reads is refused whole; a known one field by field,
    then key by key inside its own object (`image_url`, `input_audio`, `file`)."""
    kind = part.get("type") if isinstance(part, dict) else None
    carried = PART_CARRIED.get(kind) if isinstance(kind, str) else None
    if carried is None:
        if not isinstance(part, dict):
            return None  # not a part at all: validation (or the Client) says so
        how = ONLY_FORWARDED if kind in PART_FORWARDED else UNKNOWN
        return f"{where} (a {kind!r} part)", where, how
    found = _extra(part, carried, frozenset(), where)
    inner = PART_INNER_CARRIED.get(part["type"])  # a carried part: its type is a str
    if found is None and inner is not None:
        found = _extra(part.get(kind), inner, frozenset(), f"{where}.{kind}")
    return found


def _extra(
    raw: Any, carried: frozenset[str], forwarded: frozenset[str], where: str
) -> tuple[str, str, str] | None:
    if not isinstance(raw, dict):
        return None
    for key, value in raw.items():
        if key not in carried and value not in (None, [], {}):
            path = f"{where}.{key}"
            return path, path, ONLY_FORWARDED if key in forwarded else UNKNOWN
    return None
