"""OpenAI request bodies, validated once at the edge; unknown fields are kept for pass-through.

A validation failure becomes a 400 `invalid_request_error` naming the field, never a 500.
These models are also the gateway's published contract: /openapi.json is generated from them.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smallfirst.errors import InvalidRequestError
from smallfirst.types import GenerationParams, Message, Tool


class Body(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, examples=["small"])


class SamplingBody(Body):
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def params(self) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return GenerationParams(
            max_tokens=self.output_limit,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=stop,
            seed=self.seed,
        )


class ContentPart(BaseModel):
    """One entry of a message's `content` list: any `type` (image parts etc. pass through),
    but a `text` part must carry its text as a string."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str = Field(min_length=1)
    text: str | None = Field(default=None, validate_default=True)

    @field_validator("text")
    @classmethod
    def _text_part_has_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("type") == "text":
            raise ValueError("a text part needs its text as a string")
        return value


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(min_length=1)
    arguments: str
    """JSON text, as the model wrote it."""


class ToolCallBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallBody] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _tool_results_name_their_call(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return self


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolBody(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(BaseModel):
    name: str = Field(min_length=1)


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: Literal["function"]
    function: NamedFunction


class ChatBody(SamplingBody):
    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: dict[str, Any] | None = None
    tools: list[ToolBody] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_exists(
        cls, value: str | NamedToolChoice | None, info: ValidationInfo
    ) -> str | NamedToolChoice | None:
        tools = info.data.get("tools") or []
        if isinstance(value, NamedToolChoice):
            if value.function.name not in {tool.function.name for tool in tools}:
                raise ValueError(f"tool_choice names {value.function.name!r}, not in tools")
        elif value == "required" and not tools:
            raise ValueError("tool_choice is 'required' but no tools are given")
        return value

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        _schema_of(value)  # refuse unknown formats before any model is called
        _spec_of(value)
        return value

    def to_messages(self) -> list[Message]:
        """Our messages; `developer` (OpenAI's newer name for system) becomes `system`."""
        messages = []
        for raw in self.messages:
            message = Message.from_openai(raw.model_dump(exclude_none=True))
            if message.role == "developer":
                message.role = "system"
            messages.append(message)
        return messages

    def params(self) -> GenerationParams:
        params = super().params()
        if self.max_completion_tokens is not None:
            params.max_tokens_name = "max_completion_tokens"
        params.logprobs = self.logprobs
        params.top_logprobs = self.top_logprobs
        params.json_schema = _schema_of(self.response_format)
        spec = _spec_of(self.response_format)
        if spec is not None:
            name, description, strict = spec
            params.json_schema_name, params.json_schema_description = name, description
            params.json_schema_strict = strict
        params.json_object = (self.response_format or {}).get("type") == "json_object"
        if self.tools:
            params.tools = [
                Tool.from_openai(tool.model_dump(exclude_none=True)) for tool in self.tools
            ]
        choice = self.tool_choice
        params.tool_choice = choice.model_dump() if isinstance(choice, BaseModel) else choice
        params.parallel_tool_calls = self.parallel_tool_calls
        return params


class CompletionBody(SamplingBody):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt is supported per request")
        return value

    @property
    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def params(self) -> GenerationParams:
        params = super().params()
        if self.logprobs is not None:
            params.logprobs = True
            params.top_logprobs = self.logprobs or None
        return params


class EmbeddingBody(Body):
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """What every failure answers: `{"error": {...}}` (see `SmallfirstError.to_openai`)."""

    error: ErrorDetail


B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")


TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _is_field(part: str | int) -> bool:
    """Union members show up in pydantic's error path as type names; they are not fields."""
    return isinstance(part, int) or ("[" not in part and part not in TYPE_TAGS)


def _fields(loc: tuple[str | int, ...]) -> list[str | int]:
    return [part for part in loc if _is_field(part)]


def field_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """The one spelling of a field's path in every error: `messages[0].content[1].text`."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema.schema must be a JSON schema object",
                param="response_format",
            )
        return schema
    if kind == "json_object":
        return {"type": "object"}
    if kind in (None, "text"):
        return None
    raise InvalidRequestError(
        f"response_format.type {kind!r} is not supported", param="response_format"
    )


def _spec_of(
    response_format: dict[str, Any] | None,
) -> tuple[str | None, str | None, bool | None] | None:
    """A json_schema format's `name`, `description` and `strict`, carried upstream as the
    client gave them (None: not given); None for any other format."""
    if (response_format or {}).get("type") != "json_schema":
        return None
    spec = response_format["json_schema"]  # type: ignore[index]  # a dict: see `_schema_of`
    return (
        _spec_field(spec, "name", str),
        _spec_field(spec, "description", str),
        _spec_field(spec, "strict", bool),
    )


def _spec_field(spec: dict[str, Any], key: str, kind: type[T]) -> T | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, kind):
        where = f"response_format.json_schema.{key}"
        raise InvalidRequestError(
            f"{where} must be a {'boolean' if kind is bool else 'string'}", param=where
        )
    return value


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"the request body must be a JSON object, not {type(data).__name__}"
        )
    return data


def validate(kind: type[B], data: dict[str, Any]) -> B:
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        # The deepest error is the most telling: for `content: [{"type": "text", "text": 5}]`
        # it is `messages[0].content[0].text`, not "content should be a string".
        first = max(exc.errors(), key=lambda error: len(_fields(error["loc"])))
        where = field_path(_fields(first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InvalidRequestError(
            f"{where or 'body'}: {message}{more}", param=where or None
        ) from None
