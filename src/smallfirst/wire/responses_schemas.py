"""`POST /v1/responses` bodies (OpenAI's Responses API), validated once at the edge and read
into our request types.

Unlike the chat body, unknown fields are refused (a 400 naming the field): a Responses
request's hosted tools, reasoning or background options would change what it means, and a
gateway that drops them silently answers a different question.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic import ValidationInfo as Info

from smallfirst.errors import InvalidRequestError
from smallfirst.types import ContentPart, GenerationParams, Message, Tool, ToolCall
from smallfirst.wire.responses_fields import refuse_uncarried_input


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Loose(BaseModel):
    """Items and parts as the SDK writes them back from an earlier response (ids, status).
    Their other fields are refused before validation (see `responses_fields`), never ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(Loose):
    type: Literal["input_text", "output_text"]
    text: str


class RefusalPart(Loose):
    type: Literal["refusal"]
    refusal: str


class ImagePart(Loose):
    type: Literal["input_image"]
    image_url: str = Field(min_length=1)
    """An `https://` or `data:image/...;base64,` URL (uploaded `file_id`s are not kept here)."""
    detail: Literal["low", "high", "auto"] | None = None


def _type_of(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


def _tag(kind: str) -> Tag:
    """Tags in brackets: the edge's error paths skip such segments (`input[0].content[1].text`,
    not `input[0].message.content[1].input_text.text`)."""
    return Tag(f"[{kind}]")


def _part_tag(value: Any) -> str:
    return f"[{_type_of(value)}]"


InputPart = Annotated[
    Annotated[TextPart, _tag("input_text")]
    | Annotated[TextPart, _tag("output_text")]
    | Annotated[RefusalPart, _tag("refusal")]
    | Annotated[ImagePart, _tag("input_image")],
    Discriminator(
        _part_tag,
        custom_error_type="content_part_type",
        custom_error_message="a content part's type is input_text, output_text, refusal or "
        "input_image (files are not supported)",
    ),
]


class MessageItem(Loose):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputPart]

    def to_message(self) -> Message:
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return Message(role, self.content)
        parts = [_part(part) for part in self.content]
        text = "".join(part.text for part in parts if part.kind == "text")
        if all(part.kind == "text" for part in parts):
            return Message(role, text)
        return Message(role, text, parts=parts)


def _part(part: TextPart | RefusalPart | ImagePart) -> ContentPart:
    if isinstance(part, TextPart):
        return ContentPart("text", text=part.text)
    if isinstance(part, RefusalPart):
        return ContentPart("text", text=part.refusal)
    return ContentPart("image", url=part.image_url, detail=part.detail)


class FunctionCallItem(Loose):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(Loose):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str


def _item_tag(value: Any) -> str:
    return f"[{_type_of(value) or 'message'}]"  # the SDK's short message form has no type


InputItem = Annotated[
    Annotated[MessageItem, _tag("message")]
    | Annotated[FunctionCallItem, _tag("function_call")]
    | Annotated[FunctionCallOutputItem, _tag("function_call_output")],
    Discriminator(
        _item_tag,
        custom_error_type="input_item_type",
        custom_error_message="an input item's type is message, function_call or "
        "function_call_output (hosted tools and reasoning items are not supported)",
    ),
]


class FunctionTool(Strict):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def to_tool(self) -> Tool:
        return Tool(self.name, self.description, self.parameters, self.strict)


class NamedFunctionChoice(Strict):
    type: Literal["function"]
    name: str = Field(min_length=1)


class TextFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(Strict):
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None
    """Only the default: a model here has no other verbosity to give."""


class ResponsesBody(Strict):
    model: str = Field(min_length=1, examples=["small"])
    input: str | list[InputItem]
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = Field(default=None, min_length=1)
    metadata: dict[str, str] | None = None
    user: str | None = None
    truncation: Literal["disabled"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nothing_in_the_input_dropped(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_uncarried_input(data.get("input"))  # its 400 names the path, as is
        return data

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_exists(cls, value: Any, info: Info) -> Any:
        names = {tool.name for tool in info.data.get("tools") or []}
        if isinstance(value, NamedFunctionChoice) and value.name not in names:
            raise ValueError(f"tool_choice names {value.name!r}, not in tools")
        if value == "required" and not names:
            raise ValueError("tool_choice is 'required' but no tools are given")
        return value

    @property
    def format(self) -> TextFormat | None:
        return self.text.format if self.text is not None else None

    def input_messages(self) -> list[Message]:
        """This request's input as chat turns (without `instructions`): consecutive
        `function_call` items become one assistant turn's calls, each output a `tool` turn."""
        if isinstance(self.input, str):
            return [Message("user", self.input)]
        messages: list[Message] = []
        for item in self.input:
            if isinstance(item, MessageItem):
                messages.append(item.to_message())
            elif isinstance(item, FunctionCallItem):
                call = ToolCall(item.call_id, item.name, item.arguments)
                last = messages[-1] if messages else None
                if last is not None and last.role == "assistant" and last.parts is None:
                    last.tool_calls = [*(last.tool_calls or []), call]
                else:
                    messages.append(Message("assistant", "", tool_calls=[call]))
            else:
                messages.append(Message("tool", item.output, tool_call_id=item.call_id))
        return messages

    def params(self) -> GenerationParams:
        """`max_output_tokens` counts reasoning tokens too, so an OpenAI-compatible upstream
        gets it as `max_completion_tokens` (Anthropic's `max_tokens` already means that)."""
        params = GenerationParams(
            max_tokens=self.max_output_tokens,
            max_tokens_name="max_completion_tokens",
            temperature=self.temperature,
            top_p=self.top_p,
            parallel_tool_calls=self.parallel_tool_calls,
        )
        if self.tools:
            params.tools = [tool.to_tool() for tool in self.tools]
        choice = self.tool_choice
        if isinstance(choice, NamedFunctionChoice):
            params.tool_choice = {"type": "function", "function": {"name": choice.name}}
        else:
            params.tool_choice = choice
        fmt = self.format
        if fmt is not None and fmt.type == "json_object":
            params.json_object, params.json_schema = True, {"type": "object"}
        elif fmt is not None and fmt.type == "json_schema":
            if fmt.schema_ is None:
                raise InvalidRequestError(
                    "text.format.schema: a json_schema format needs its JSON schema",
                    param="text.format.schema",
                )
            params.json_schema = fmt.schema_
            params.json_schema_name, params.json_schema_strict = fmt.name, fmt.strict
            params.json_schema_description = fmt.description
        return params
