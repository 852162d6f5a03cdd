"""Every field of a Responses request's `input` items and their content parts, and what the
gateway does with it.

A Responses request is answered by rebuilding its input as chat turns (`Message`), so a field
those turns do not keep would be dropped, which changes what the request means: it is a 400
naming its path (`input[0].phase`, `input[1].content[0].file_id`), as chat refuses a message
field its path cannot carry (see `fields`). A field that is null or empty (as the openai SDK
writes an earlier response's items back) carries nothing and passes, and so does a value that
means what leaving the field out means.
"""

from __future__ import annotations

from typing import Any

from smallfirst.errors import InvalidRequestError

ITEM_CARRIED = {
    "message": frozenset({"type", "role", "content"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments"}),
    "function_call_output": frozenset({"type", "call_id", "output"}),
}
"""The item types `input` may hold, and the fields each turn keeps."""

ITEM_LABELS = frozenset({"id", "status"})
"""An earlier response's own labels for its items: they never change the answer."""

ITEM_UNCARRIED = {
    "message": frozenset({"phase"}),
    "function_call": frozenset({"caller", "namespace"}),
    "function_call_output": frozenset({"caller", "name", "namespace"}),
}
"""Documented by OpenAI for the item, not kept by a chat turn."""

PART_CARRIED = {
    "input_text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "detail"}),
}
"""The content part types a message item may hold, and the fields each part keeps."""

PART_LABELS = {
    "input_text": frozenset({"prompt_cache_breakpoint"}),
    "output_text": frozenset({"annotations", "logprobs"}),
    "input_image": frozenset({"prompt_cache_breakpoint"}),
}
"""A cache hint (it bills the request, as chat's `prompt_cache_key`), and an earlier answer's
citations and logprobs (they describe that answer's text, which is kept)."""

PART_UNCARRIED = {"input_image": frozenset({"file_id"})}
"""Documented by OpenAI for the part, not kept (uploaded files are not read here)."""

DEFAULTS: dict[tuple[str, str], Any] = {
    ("function_call", "caller"): {"type": "direct"},
    ("function_call_output", "caller"): {"type": "direct"},
}
"""Values that say what leaving the field out says (a call the model made itself)."""


def refuse_uncarried_input(items: Any) -> None:
    """The 400 for the first field of `input` that the chat turns would drop. Anything that is
    not an item or part of a known type is left to validation, which names it."""
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind in ITEM_CARRIED:
            kept = ITEM_CARRIED[kind] | ITEM_LABELS
            _check(item, (kind, "item"), where, kept, ITEM_UNCARRIED[kind])
        content = item.get("content") if kind == "message" else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            part_kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(part_kind, str) and part_kind in PART_CARRIED:
                kept = PART_CARRIED[part_kind] | PART_LABELS.get(part_kind, frozenset())
                uncarried = PART_UNCARRIED.get(part_kind, frozenset())
                _check(part, (part_kind, "part"), f"{where}.content[{j}]", kept, uncarried)


def _check(
    raw: dict[str, Any],
    of: tuple[str, str],
    where: str,
    kept: frozenset[str],
    uncarried: frozenset[str],
) -> None:
    """`of`: the item's or part's type, and which it is."""
    kind, noun = of
    for key, value in raw.items():
        if key in kept or value in (None, [], {}) or DEFAULTS.get((kind, key)) == value:
            continue
        path = f"{where}.{key}"
        if key in uncarried:
            why = f"is documented by OpenAI for the {kind!r} {noun} but not carried here"
        else:
            why = f"is not a field of the {kind!r} {noun} here"
        raise InvalidRequestError(
            f"{path} {why}: this gateway answers a Responses request by rebuilding its input "
            f"as chat turns, which would drop it and change what the request means; leave "
            f"{path} out",
            param=path,
        )
