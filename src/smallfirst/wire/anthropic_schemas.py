"""Anthropic Messages API request bodies (`POST /v1/messages`), validated once at the edge
and turned into our `ChatRequest`.

Like Anthropic's own API, unknown fields are refused (400 naming the field), and so are the
parts of the API this gateway does not carry (extended thinking, server tools, `top_k`,
documents in a message): a request is answered as sent or not at all. `cache_control`
markers are accepted and not forwarded (they steer Anthropic's prompt cache, not the answer).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from smallfirst.types import ContentPart, GenerationParams, Message, Tool, ToolCall
from smallfirst.wire.schemas import Body


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CacheControlled(Strict):
    cache_control: dict[str, Any] | None = None


class TextBlock(CacheControlled):
    type: Literal["text"]
    text: str
    citations: list[Any] | None = None


class Base64Source(Strict):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class UrlSource(Strict):
    type: Literal["url"]
    url: str = Field(pattern=r"^https?://")


class ImageBlock(CacheControlled):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]

    @property
    def url(self) -> str:
        source = self.source
        if isinstance(source, UrlSource):
            return source.url
        return f"data:{source.media_type};base64,{source.data}"


class ToolUseBlock(CacheControlled):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


ResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(CacheControlled):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultPart] | None = None
    is_error: bool | None = None


UserBlock = Annotated[
    TextBlock | ImageBlock | ToolResultBlock | ToolUseBlock, Field(discriminator="type")
]


class MessageParam(Strict):
    role: Literal["user", "assistant"]
    content: str | list[UserBlock]

    @field_validator("content")
    @classmethod
    def _blocks_fit_the_role(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return value
        role = info.data.get("role")
        allowed = ("text", "tool_use") if role == "assistant" else ("text", "image", "tool_result")
        for block in value:
            if block.type not in allowed:
                raise ValueError(f"a {role} message cannot hold a {block.type} block")
        return value


class ToolParam(CacheControlled):
    type: Literal["custom"] | None = None
    """Server tools (web search, code execution, ...) have other types and are refused."""
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    """Anthropic's limit; OpenAI's is 64, which an OpenAI-compatible upstream enforces."""
    description: str | None = None
    input_schema: dict[str, Any]
    strict: bool | None = None


class ToolChoiceAuto(Strict):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Strict):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Strict):
    type: Literal["tool"]
    name: str = Field(min_length=1)
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Strict):
    type: Literal["none"]


ToolChoiceParam = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]


class MessagesBody(Body):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_tokens: int = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_exists(cls, value: Any, info: ValidationInfo) -> Any:
        names = {tool.name for tool in info.data.get("tools") or []}
        if isinstance(value, ToolChoiceTool) and value.name not in names:
            raise ValueError(f"tool_choice names {value.name!r}, not in tools")
        if isinstance(value, ToolChoiceAny | ToolChoiceTool) and not names:
            raise ValueError(f"tool_choice is {value.type!r} but no tools are given")
        return value

    def to_messages(self) -> list[Message]:
        messages: list[Message] = []
        if self.system:
            system = self.system
            text = system if isinstance(system, str) else "\n\n".join(b.text for b in system)
            messages.append(Message("system", text))
        for turn in self.messages:
            if isinstance(turn.content, str):
                messages.append(Message(turn.role, turn.content))
            elif turn.role == "assistant":
                messages.append(assistant_message(turn.content))
            else:
                messages.extend(user_messages(turn.content))
        return messages

    def params(self) -> GenerationParams:
        params = GenerationParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop_sequences or None,
        )
        if self.tools:
            params.tools = [
                Tool(t.name, t.description, t.input_schema, t.strict) for t in self.tools
            ]
        choice = self.tool_choice
        if isinstance(choice, ToolChoiceTool):
            params.tool_choice = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            params.tool_choice = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if getattr(choice, "disable_parallel_tool_use", None):
            params.parallel_tool_calls = False
        return params

    def openai_view(self, messages: list[Message], params: GenerationParams) -> dict[str, Any]:
        """The request as an OpenAI chat body, for what reads that shape (admission)."""
        view: dict[str, Any] = {"messages": [m.to_openai() for m in messages]}
        if params.tools:
            view["tools"] = [tool.to_openai() for tool in params.tools]
        if params.tool_choice is not None:
            view["tool_choice"] = params.tool_choice
        return view


def assistant_message(blocks: list[Any]) -> Message:
    text = "".join(b.text for b in blocks if isinstance(b, TextBlock))
    calls = [
        ToolCall(b.id, b.name, orjson.dumps(b.input).decode())
        for b in blocks
        if isinstance(b, ToolUseBlock)
    ]
    return Message("assistant", text, tool_calls=calls or None)


def user_messages(blocks: list[Any]) -> list[Message]:
    """A user turn: each `tool_result` its own `tool` message, and the text and images
    around them user messages, in order."""
    messages: list[Message] = []
    pending: list[TextBlock | ImageBlock] = []
    for block in blocks:
        if isinstance(block, ToolResultBlock):
            if pending:
                messages.append(content_message("user", pending))
                pending = []
            messages.append(tool_message(block))
        else:
            pending.append(block)
    if pending:
        messages.append(content_message("user", pending))
    return messages


def tool_message(block: ToolResultBlock) -> Message:
    content = block.content
    if content is None or isinstance(content, str):
        message = Message("tool", content or "")
    else:
        message = content_message("tool", content)
    if block.is_error:
        message.content = "Error: " + message.content
        if message.parts is not None:
            message.parts.insert(0, ContentPart("text", text="Error: "))
    message.tool_call_id = block.tool_use_id
    return message


def content_message(role: Literal["user", "tool"], blocks: list[Any]) -> Message:
    """Text alone stays a string; with images the blocks become content parts in order."""
    text = "\n".join(b.text for b in blocks if isinstance(b, TextBlock))
    if all(isinstance(b, TextBlock) for b in blocks):
        return Message(role, text)
    parts = [
        ContentPart("text", text=b.text)
        if isinstance(b, TextBlock)
        else ContentPart("image", url=b.url)
        for b in blocks
    ]
    return Message(role, text, parts=parts)


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorBody(BaseModel):
    """What every failure of `/v1/messages` answers (wire/anthropic_render.py `error_json`)."""

    type: Literal["error"]
    error: AnthropicErrorDetail
