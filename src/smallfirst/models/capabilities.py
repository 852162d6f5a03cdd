"""What a configured model can do: declared per model, with defaults per backend.

Routing, cascades, PII rules, pricing and tasks read these, never backend names, so an
Ollama or vLLM server behind the `openai` backend, or a plugin backend, is treated by what
it is declared to be. `local` is the privacy promise: the data never leaves this network.
It is true by default only for models that run in this process or on this machine (llama.cpp,
replay, student, and an OpenAI-compatible server whose `base_url` host is a loopback
address); a server elsewhere on your network is local only when its config says so:

    models:
      - name: qwen
        backend: openai
        base_url: http://10.0.0.5:8000/v1
        capabilities: {local: true, tools: true}
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from smallfirst.config import ModelConfig


@dataclass(frozen=True, slots=True)
class Capabilities:
    local: bool = False
    """The data never leaves this network: the only models personal data may go to."""
    tools: bool = False
    """Takes tool / function definitions and answers with tool calls."""
    vision: bool = False
    """Takes images in the messages."""
    audio: bool = False
    """Takes audio parts (`input_audio`) in the messages."""
    files: bool = False
    """Takes file parts (e.g. PDFs) in the messages."""
    message_names: bool = False
    """Keeps a message's `name` (which participant said it); only OpenAI's format has one."""
    image_detail: bool = False
    """Keeps an image's `detail` (`low`, `high`): how closely OpenAI's vision models look."""
    json_schema: bool = False
    """Can be held to a JSON schema (a grammar, or `response_format` json_schema)."""
    grammar: bool = False
    """Takes a GBNF grammar (llama.cpp): output outside it cannot be written at all."""
    logprobs: bool = False
    """Returns token log-probabilities (the cascade's `logprob` check needs them)."""
    embedded: bool = False
    """Runs in this process from a local GGUF file: preloaded by `serve --preload`, usable as
    the rating router's rater."""
    context: int = 4096
    """Tokens of prompt plus answer; the model's `context` key."""


DEFAULT_DETAIL = (None, "auto")
"""An image `detail` that asks for nothing: any model that takes images honours it."""


def openai_compatible(config: ModelConfig) -> Capabilities:
    """Local only on a loopback host; `response_format` json_schema only on chat. Tools,
    images, audio and files are forwarded as sent, so the upstream honours them or answers
    with its own error: declare `vision: false` (etc.) for a text-only server, and routing
    then sends such requests elsewhere instead."""
    return Capabilities(
        local=is_loopback_url(config.base_url),
        tools=True,
        vision=True,
        audio=True,
        files=True,
        message_names=True,
        image_detail=True,
        json_schema=config.style == "chat",
        logprobs=True,
    )


BackendDefaults = Capabilities | Callable[[ModelConfig], Capabilities]

BACKEND_DEFAULTS: dict[str, BackendDefaults] = {
    "llamacpp": Capabilities(
        local=True, tools=True, json_schema=True, grammar=True, logprobs=True, embedded=True
    ),
    "openai": openai_compatible,
    "anthropic": Capabilities(tools=True, vision=True, files=True),
    "replay": Capabilities(local=True, logprobs=True),
    "student": Capabilities(local=True, logprobs=True),
}
"""A backend registered without capabilities gets none (so it is not `local` either)."""

PromptStyle = Literal["chat", "completion"]

PROMPT_STYLES: dict[str, PromptStyle] = {"llamacpp": "completion"}
"""How a backend's models are prompted unless a model sets `prompt_style`: `completion` for
base models (one plain-text transcript ending in a cue, as the packaged Gemma needs), `chat`
(the default for any backend not named here) for models with a chat template."""


def set_backend_defaults(
    backend: str, defaults: BackendDefaults | None, prompt_style: PromptStyle = "chat"
) -> None:
    global DEFAULTS_VERSION
    BACKEND_DEFAULTS[backend] = defaults or Capabilities()
    PROMPT_STYLES[backend] = prompt_style
    DEFAULTS_VERSION += 1


def default_prompt_style(backend: str) -> PromptStyle:
    """The backend's declared prompt style (`ModelConfig.style` without `prompt_style`)."""
    return PROMPT_STYLES.get(backend, "chat")


DEFAULTS_VERSION = 0
"""Bumped when a backend's defaults change, so capabilities worked out before are redone."""


def capabilities_of(config: ModelConfig) -> Capabilities:
    """The backend's defaults for this model, then the model's declared `capabilities`."""
    defaults = BACKEND_DEFAULTS.get(config.backend, Capabilities())
    if callable(defaults):
        defaults = defaults(config)
    declared = config.capabilities.model_dump(exclude_none=True)
    return replace(defaults, **declared, context=config.context)


def is_loopback_url(url: str | None) -> bool:
    """True when the URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url or "").hostname
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
