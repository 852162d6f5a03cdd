"""What a request needs from the model that answers it, read from the request itself.

A gateway that drops a field it cannot honour changes what the request means. So every field
that only some models honour (tools, images, audio, files, a message's `name`, an image's
`detail`, structured output, logprobs, a grammar or a list of choices) is a need, named by
where it sits in the request; a model missing one is never sent the request: routers and
cascades pass over it (the route reason says why), and a request naming that model directly
is refused with a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from smallfirst.errors import InvalidRequestError
from smallfirst.models.capabilities import DEFAULT_DETAIL
from smallfirst.models.registry import ModelEntry, Registry
from smallfirst.types import ChatRequest, CompletionRequest

AnyRequest = ChatRequest | CompletionRequest

PART_NEEDS = {"image": "vision", "audio": "audio", "file": "files"}
CHARS_PER_TOKEN = 4
"""For fitting a prompt into a context window: a typical ratio, not a bound (a bound would
pass over models the prompt fits)."""


@dataclass(frozen=True, slots=True)
class Need:
    capability: str
    """A `Capabilities` field: tools, vision, audio, files, message_names, image_detail,
    json_schema, grammar, logprobs."""
    field: str
    """Where in the request, e.g. `tools` or `messages[2].content[1]`."""


def needs_of(request: AnyRequest) -> list[Need]:
    """Every capability the request relies on, first occurrence of each."""
    found: dict[str, Need] = {}

    def add(capability: str, field: str) -> None:
        found.setdefault(capability, Need(capability, field))

    params = request.params
    if params.tools:
        add("tools", "tools")
    if params.json_schema is not None or params.json_object:
        add("json_schema", "response_format")
    if params.logprobs:
        add("logprobs", "logprobs")
    if params.choices is not None:
        add("grammar", "choices")
    if params.grammar is not None:
        add("grammar", "grammar")
    if isinstance(request, ChatRequest):
        for i, message in enumerate(request.messages):
            if message.tool_calls:
                add("tools", f"messages[{i}].tool_calls")
            if message.role == "tool":
                add("tools", f"messages[{i}]")
            if message.name:
                add("message_names", f"messages[{i}].name")
            for j, part in enumerate(message.parts or ()):
                capability = PART_NEEDS.get(part.kind)
                if capability is not None:
                    add(capability, f"messages[{i}].content[{j}]")
                if part.kind == "image" and part.detail not in DEFAULT_DETAIL:
                    add("image_detail", f"messages[{i}].content[{j}].image_url.detail")
    return list(found.values())


def lacking(entry: ModelEntry, needs: Iterable[Need]) -> list[Need]:
    return [need for need in needs if not getattr(entry.capabilities, need.capability)]


def prompt_tokens(request: AnyRequest) -> int:
    if isinstance(request, ChatRequest):
        chars = sum(len(m.content) + len(m.role) + 4 for m in request.messages)
    else:
        chars = len(request.prompt)
    return chars // CHARS_PER_TOKEN + 1


def fits_context(entry: ModelEntry, request: AnyRequest) -> bool:
    """Prompt plus `max_tokens` within the model's context window (typical token count)."""
    wanted = prompt_tokens(request) + (request.params.max_tokens or 0)
    return wanted <= entry.capabilities.context


def why_unfit(entry: ModelEntry, request: AnyRequest, needs: list[Need]) -> str | None:
    """Why `entry` cannot serve the request, in words for a route reason; None if it can."""
    missing = lacking(entry, needs)
    if missing:
        return f"{entry.name} lacks {', '.join(n.capability for n in missing)}"
    if not fits_context(entry, request):
        wanted = prompt_tokens(request) + (request.params.max_tokens or 0)
        return f"{entry.name}'s context ({entry.capabilities.context}) < ~{wanted} tokens"
    return None


def unfit_for(registry: Registry, request: AnyRequest) -> Callable[[str], str | None]:
    """`why_unfit` for the named models of `registry`, the request's needs read once (a
    fallback must honour the request as the model it replaces would have)."""
    needs = needs_of(request)

    def why(name: str) -> str | None:
        return why_unfit(registry.get(name), request, needs)

    return why


def refuse(entry: ModelEntry, missing: list[Need], others: Iterable[ModelEntry]) -> NoReturn:
    """The 400 for a request naming a model that cannot honour one of its fields."""
    need = missing[0]
    able = [e.name for e in others if not lacking(e, [need])]
    where = f"models with it: {', '.join(able)}" if able else "no configured model has it"
    raise InvalidRequestError(
        f"{need.field} needs a model with {need.capability}; {entry.name!r} does not declare "
        f"it ({where}; or declare `capabilities: {{{need.capability}: true}}` for the model)",
        param=need.field,
    )


def no_model_serves(needs: list[Need], tried: list[str]) -> NoReturn:
    """The 400 when no model a router or cascade may use can serve the request."""
    field = needs[0].field if needs else "messages"
    wanted = ", ".join(f"{n.capability} ({n.field})" for n in needs) or "a larger context"
    raise InvalidRequestError(
        f"no configured model can serve this request: it needs {wanted}; " + "; ".join(tried),
        param=field,
    )
