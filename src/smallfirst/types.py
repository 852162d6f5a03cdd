"""Plain data passed between router, providers, ledger and server.

Dataclasses, not pydantic: they are built on the hot path and never validated twice.
Validation of user input happens once, at the edge (server request models, config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Role = Literal["system", "user", "assistant", "tool"]
Tier = Literal["tiny", "small", "medium", "large"]
TIERS: tuple[Tier, ...] = ("tiny", "small", "medium", "large")


PartKind = Literal["text", "image", "audio", "file"]


@dataclass(slots=True)
class ContentPart:
    """One piece of a message: text, an image (URL or `data:` URL), audio or a file.

    `raw` keeps the part exactly as the client sent it, so a backend that speaks the same
    format forwards it untouched."""

    kind: PartKind
    text: str = ""
    url: str | None = None
    """An image's URL (`https://...` or `data:image/png;base64,...`)."""
    detail: str | None = None
    raw: dict[str, Any] | None = None

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> ContentPart:
        kind = raw.get("type")
        if kind == "text":
            return cls("text", text=raw.get("text") or "", raw=raw)
        if kind == "image_url":
            image = raw.get("image_url")
            image = image if isinstance(image, dict) else {"url": image}
            return cls("image", url=image.get("url"), detail=image.get("detail"), raw=raw)
        if kind == "input_audio":
            return cls("audio", raw=raw)
        return cls("file", raw=raw)

    def to_openai(self) -> dict[str, Any]:
        if self.raw is not None:
            return self.raw
        if self.kind == "text":
            return {"type": "text", "text": self.text}
        image: dict[str, Any] = {"url": self.url}
        if self.detail:
            image["detail"] = self.detail
        return {"type": "image_url", "image_url": image}


@dataclass(slots=True)
class ToolCall:
    """A call the model asks for; `arguments` is JSON text, as in OpenAI's format."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> ToolCall:
        function = raw.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        return cls(id=raw.get("id") or "", name=function.get("name") or "", arguments=arguments)


@dataclass(slots=True)
class Tool:
    """A function the model may call, with a JSON schema for its arguments."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> Tool:
        function = raw.get("function") or {}
        return cls(
            name=function.get("name") or "",
            description=function.get("description"),
            parameters=function.get("parameters"),
            strict=function.get("strict"),
        )

    def to_openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        if self.parameters is not None:
            function["parameters"] = self.parameters
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(slots=True)
class Message:
    role: Role
    content: str
    """The text of the message (its text parts joined); what text-only code reads."""
    parts: list[ContentPart] | None = None
    """Every part, in order, when the content was a list (images, audio, files, text)."""
    tool_calls: list[ToolCall] | None = None
    """An assistant turn's calls."""
    tool_call_id: str | None = None
    """A `tool` turn: the call this is the result of."""
    name: str | None = None

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> Message:
        """An OpenAI message dict, whole: content parts, tool calls and tool results."""
        content = raw.get("content")
        parts = None
        if isinstance(content, list):
            parts = [ContentPart.from_openai(p) for p in content if isinstance(p, dict)]
            content = "".join(p.text for p in parts if p.kind == "text")
        calls = raw.get("tool_calls")
        return cls(
            role=raw["role"],
            content=content or "",
            parts=parts,
            tool_calls=[ToolCall.from_openai(c) for c in calls] if calls else None,
            tool_call_id=raw.get("tool_call_id"),
            name=raw.get("name"),
        )

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role}
        if self.parts is not None:
            out["content"] = [part.to_openai() for part in self.parts]
        else:
            out["content"] = self.content if self.content or not self.tool_calls else None
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    @property
    def is_text(self) -> bool:
        """Only text: no image, audio or file parts, no tool calls or results."""
        return (
            not self.tool_calls
            and self.role != "tool"
            and all(part.kind == "text" for part in self.parts or ())
        )


ToolChoice = str | dict[str, Any]
"""`auto`, `none`, `required`, or `{"type": "function", "function": {"name": ...}}`."""


LimitName = Literal["max_tokens", "max_completion_tokens"]


@dataclass(slots=True)
class GenerationParams:
    max_tokens: int | None = None
    max_tokens_name: LimitName = "max_tokens"
    """The name the client gave the limit: an OpenAI-compatible chat upstream gets the same
    one (o-series and gpt-5 models refuse `max_tokens`, older servers the newer name)."""
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    json_schema: dict[str, Any] | None = None
    """Constrain the output to JSON matching this schema (grammar or response_format)."""
    json_schema_name: str | None = None
    """The schema's `name` as the client gave it (None: `output`)."""
    json_schema_description: str | None = None
    json_schema_strict: bool | None = True
    """`strict` as an OpenAI-compatible upstream gets it; None leaves it out (the upstream's
    default, not strict). A schema given in code is meant to hold, hence True; a client's
    request carries its own value, or None when it gave none."""
    grammar: str | None = None
    """A raw GBNF grammar; only the embedded backend honours it."""
    choices: list[str] | None = None
    """The output is exactly one of these strings (a task's labels); only backends with the
    `grammar` capability honour it. Greedy choices skip the steps the list decides."""
    json_object: bool = False
    """`response_format: {"type": "json_object"}`: any valid JSON object."""
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    def forced_tool(self) -> str | None:
        """The function `tool_choice` names, if it names one."""
        choice = self.tool_choice
        if isinstance(choice, dict):
            return (choice.get("function") or {}).get("name") or choice.get("name")
        return None


@dataclass(slots=True)
class ChatRequest:
    messages: list[Message]
    params: GenerationParams = field(default_factory=GenerationParams)
    task: str | None = None
    """The task it belongs to (smallfirst/learning/tasks.py); `auto` serves it by that
    task's learned policy. Never sent to a model."""


@dataclass(slots=True)
class CompletionRequest:
    prompt: str
    params: GenerationParams = field(default_factory=GenerationParams)
    task: str | None = None
    """As on `ChatRequest`."""


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    """Every prompt token, cached ones included."""
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Of `input_tokens`, those read from the provider's prompt cache (billed at its cached
    rate): OpenAI `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`."""
    cache_write_tokens: int = 0
    """Of `input_tokens`, those written to the prompt cache (Anthropic
    `cache_creation_input_tokens`, billed at its cache-write rate)."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] | None = None


@dataclass(slots=True)
class Generation:
    """A finished answer from one model."""

    text: str
    model: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    logprobs: list[TokenLogprob] | None = None
    latency_s: float = 0.0
    ttft_s: float | None = None
    tool_calls: list[ToolCall] | None = None
    """The calls the model made (then `finish_reason` is `tool_calls`)."""
    refusal: str | None = None


@dataclass(slots=True)
class Delta:
    """One streamed piece. The last delta has `finish_reason` and `usage` set."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str = ""
    """A piece of the model's refusal (OpenAI streams it as `delta.refusal`)."""


@dataclass(slots=True)
class ToolCallDelta:
    """A streamed piece of a tool call, in OpenAI's shape: the first piece of call `index`
    carries its id and name, later pieces more of its arguments' JSON text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
