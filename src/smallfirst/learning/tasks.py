"""Which task a request belongs to, so evidence and policies are kept per task.

In order: the name the request gives itself (`metadata.task` in the body, or the
`x-smallfirst-task` header), the cascade or task endpoint it was sent to, or a fingerprint
`t-<12 hex>` of its system prompt and prompt template.

The fingerprint groups requests by the text that repeats, not the part that changes. Per
system prompt, the namer learns online which whole opening (or closing) lines the user
prompts share (`routing/templates.py`, from the first unmatched prompts it sees). The
naming rule keeps a name stable from the first request on:

- a system prompt's traffic is one task, named by the system prompt alone;
- the first template learned under it keeps that name (its first requests, seen before the
  template was known, already had it);
- each further template learned under the same system prompt is a task of its own, named
  by the system prompt and the template's fixed text.

So an app with one instruction template per system prompt (the usual case) gets the same
name on every replica and after every restart, and a second template is split off after
its first few requests (counted in the first task until then). When several templates
arrive mixed from the start, the one most of the first prompts share keeps the system
prompt's name. A system prompt that changes per request (a date, a user's name) is a task
per distinct text: such apps should name their task. Memory is bounded: templates for the
`MAX_SYSTEMS` most recent system prompts, and at most `SAMPLES` clipped prompts each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Literal

from smallfirst.config import LearnConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.routing.templates import MIN_PROMPTS, learn_template

TASK_HEADER = "x-smallfirst-task"
MAX_NAME_CHARS = 100
MAX_SYSTEMS = 512
"""System prompts whose templates are kept (least recently seen forgotten first)."""
MAX_TEMPLATES = 8
"""Templates learned per system prompt; past it, the rest of its traffic stays in its tasks."""
SAMPLES = 24
"""Recent prompts (matching no known template) kept per system prompt to learn from."""
SAMPLE_CHARS = 1024
"""A sample keeps this much of a prompt's start and of its end: templates are no longer."""
MIN_CHARS = 8
"""A template's fixed text is at least this long (shorter shared lines are chance)."""
MAX_WAIT = 256
"""The namer tries to learn on every new sample until its samples are full; after a round
on full samples that finds no template, it waits for twice as many new prompts before it
tries again (up to this many), so free-text traffic costs almost nothing."""


class TaskNamer:
    def __init__(self, config: LearnConfig) -> None:
        self.config = config
        self._systems: OrderedDict[bytes, _SystemTemplates] = OrderedDict()
        self._lock = threading.Lock()

    def name(
        self, data: Mapping[str, Any], headers: Mapping[str, str], endpoint: str | None
    ) -> str:
        """`data`: the JSON body of a chat, completion, Messages or Responses request."""
        explicit = explicit_name(data, headers)
        if explicit is not None:
            return explicit
        if endpoint:
            return endpoint
        system, prompt = request_text(data)
        return self.fingerprint(system, prompt)

    def fingerprint(self, system: str, prompt: str) -> str:
        key = blake2b(system.encode(), digest_size=16).digest()
        with self._lock:
            templates = self._systems.get(key)
            if templates is None:
                templates = self._systems[key] = _SystemTemplates(key)
                if len(self._systems) > MAX_SYSTEMS:
                    self._systems.popitem(last=False)
            else:
                self._systems.move_to_end(key)
            return templates.name_of(prompt)


def explicit_name(data: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The body's `metadata.task`, else the header; a bad one (either) is a 400."""
    metadata = data.get("metadata")
    in_body = metadata.get("task") if isinstance(metadata, Mapping) else None
    in_header = headers.get(TASK_HEADER)
    for value, field in ((in_header, TASK_HEADER), (in_body, "metadata.task")):
        if value is not None:
            _check_name(value, field)
    return in_body if in_body is not None else in_header


def _check_name(value: Any, field: str) -> None:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_NAME_CHARS
        or not value.isprintable()
        or value != value.strip()
    ):
        raise InvalidRequestError(
            f"{field} names the request's task: a printable string of 1 to {MAX_NAME_CHARS} "
            f"characters without leading or trailing spaces (got {_shown(value)})",
            param=field,
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def request_text(data: Mapping[str, Any]) -> tuple[str, str]:
    """(system prompt, the last user prompt) of any request body the gateway takes: chat
    `messages` (system and developer turns), Anthropic's `system`, the Responses API's
    `instructions` and `input`, a completion's `prompt`."""
    system = [_text(data.get(key)) for key in ("system", "instructions") if key in data]
    messages = data.get("messages")
    if isinstance(messages, list):
        turns = [m for m in messages if isinstance(m, Mapping)]
        system += [_text(m.get("content")) for m in turns if m.get("role") in SYSTEM_ROLES]
        return "\n".join(system), _last_user(turns)
    if "input" in data:
        given = data["input"]
        if isinstance(given, list):
            return "\n".join(system), _last_user([m for m in given if isinstance(m, Mapping)])
        return "\n".join(system), _text(given)
    return "\n".join(system), _text(data.get("prompt"))


SYSTEM_ROLES = ("system", "developer")


def _last_user(turns: list[Mapping[str, Any]]) -> str:
    for turn in reversed(turns):
        if turn.get("role") == "user":
            return _text(turn.get("content"))
    return ""


def _text(content: Any) -> str:
    """A message's text: a string, or its text parts one per line."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p if isinstance(p, str) else p.get("text") for p in content if _has_text(p))
        return "\n".join(part for part in parts if isinstance(part, str))
    return ""


def _has_text(part: Any) -> bool:
    return isinstance(part, str) or (isinstance(part, Mapping) and "text" in part)


@dataclass(slots=True, frozen=True)
class _Fixed:
    """One learned template: a fixed opening or closing of the prompts, and its task."""

    kind: Literal["prefix", "suffix"]
    text: str
    name: str

    def matches(self, prompt: str) -> bool:
        if self.kind == "prefix":
            return prompt.startswith(self.text)
        return len(self.text) < len(prompt) and prompt.endswith(self.text)


class _SystemTemplates:
    """The templates learned under one system prompt, and the prompts to learn more from."""

    __slots__ = ("default", "fixed", "fresh", "key", "samples", "wait")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.default = "t-" + key.hex()[:12]
        self.fixed: list[_Fixed] = []
        self.samples: deque[tuple[str, str]] = deque(maxlen=SAMPLES)
        self.fresh = 0
        """Samples added since the last try."""
        self.wait = 1

    def name_of(self, prompt: str) -> str:
        for fixed in self.fixed:
            if fixed.matches(prompt):
                return fixed.name
        if len(self.fixed) < MAX_TEMPLATES:
            self.samples.append(_clip(prompt))
            self.fresh += 1
            if self.fresh >= self.wait and len(self.samples) >= MIN_PROMPTS:
                self._learn()
                return next((f.name for f in self.fixed if f.matches(prompt)), self.default)
        return self.default

    def _learn(self) -> None:
        self.fresh = 0
        found = self._found()
        if not found:
            full = len(self.samples) == SAMPLES
            self.wait = min(max(self.wait * 2, MIN_PROMPTS), MAX_WAIT) if full else 1
            return
        self.wait = 1
        if not self.fixed:  # the first template keeps the system prompt's name
            first = max(found, key=lambda f: (self._share(f), len(f.text), f.text))
            found = [_Fixed(f.kind, f.text, self.default) if f is first else f for f in found]
        kept = [f for f in found if f.name not in {g.name for g in self.fixed}]
        self.fixed = sorted([*self.fixed, *kept][:MAX_TEMPLATES], key=_match_order)
        self.samples = deque(
            (s for s in self.samples if not any(f.matches(s[0]) for f in kept)), maxlen=SAMPLES
        )

    def _found(self) -> list[_Fixed]:
        """Shared openings first; shared closings of the samples that have none."""
        heads = [head for head, _ in self.samples]
        prefixes = learn_template(heads, MIN_PROMPTS, MIN_CHARS).prefixes
        rest = [tail for head, tail in self.samples if not any(map(head.startswith, prefixes))]
        suffixes = learn_template(rest, MIN_PROMPTS, MIN_CHARS).suffixes
        return [self._named("prefix", text) for text in prefixes] + [
            self._named("suffix", text) for text in suffixes
        ]

    def _named(self, kind: Literal["prefix", "suffix"], text: str) -> _Fixed:
        digest = blake2b(self.key + kind.encode() + text.encode(), digest_size=6).hexdigest()
        return _Fixed(kind, text, "t-" + digest)

    def _share(self, fixed: _Fixed) -> int:
        side = 0 if fixed.kind == "prefix" else 1
        return sum(fixed.matches(sample[side]) for sample in self.samples)


def _match_order(fixed: _Fixed) -> tuple[int, int]:
    """Openings before closings, the longest (most specific) first."""
    return (0 if fixed.kind == "prefix" else 1, -len(fixed.text))


def _clip(prompt: str) -> tuple[str, str]:
    """(start, end) of a prompt, each at most SAMPLE_CHARS: a clipped line is never part of
    a learned template (only whole lines before the cut are)."""
    if len(prompt) <= SAMPLE_CHARS:
        return prompt, prompt
    return prompt[:SAMPLE_CHARS], prompt[-SAMPLE_CHARS:]
