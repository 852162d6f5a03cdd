"""Our chat types to Anthropic's Messages API and back: request bodies, answers, stream events.

What differs from OpenAI's format, and how it is bridged:

- system messages go to the top-level `system`; turns must alternate, so consecutive turns of
  one role are merged into one turn's content blocks;
- an assistant turn's calls are `tool_use` blocks (arguments as a JSON object, not text);
  `tool` results are `tool_result` blocks in a user turn (consecutive results share one);
- images are `image` blocks whose source is a URL or base64 data (from a `data:` URL);
  PDFs sent as OpenAI `file` parts become `document` blocks;
- `tool_choice` auto / none / required / a named function is auto / none / any / tool, and
  `parallel_tool_calls: false` is `disable_parallel_tool_use`;
- Anthropic takes no grammar, so `choices` and `grammar` are a 400 naming them, and has no
  message `name` nor image `detail` (other than `auto`), so each is a 400 naming its path;
- `input_tokens` excludes cached prompt tokens; our `Usage.input_tokens` is every prompt
  token, so the cache reads and writes are added to it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from smallfirst.errors import InvalidRequestError, UpstreamError
from smallfirst.models.capabilities import DEFAULT_DETAIL
from smallfirst.models.usage import token_count, usage_object
from smallfirst.types import (
    ChatRequest,
    ContentPart,
    Delta,
    Generation,
    GenerationParams,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

DEFAULT_MAX_TOKENS = 1024
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic's `stop_reason` as OpenAI's `finish_reason`."""
DATA_URL = re.compile(
    r"^data:(?P<media>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.S
)


def messages_body(model: str, request: ChatRequest, stream: bool) -> dict[str, Any]:
    refuse_grammar(model, request.params)
    refuse_openai_only(model, request.messages)
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = message_blocks(message, f"messages[{i}]")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": request.params.max_tokens or DEFAULT_MAX_TOKENS,
        **params_body(request.params),
    }
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    return body


def refuse_grammar(model: str, params: GenerationParams) -> None:
    """Anthropic's API takes no grammar: `choices` or `grammar` would be dropped there, which
    changes what the request means, so either is a 400 naming it."""
    for field in ("choices", "grammar"):
        if getattr(params, field) is not None:
            raise InvalidRequestError(
                f"{field} needs a model that takes a grammar, and Anthropic's API takes none "
                f"({model!r} cannot honour it): send it to a model with `grammar`, or leave "
                f"{field} out",
                param=field,
            )


def refuse_openai_only(model: str, messages: list[Message]) -> None:
    """A message's `name` and an image's `detail` have no place in Anthropic's format; routing
    keeps them from a model that does not declare `message_names` / `image_detail`, and this
    refuses them where a config declared either for an Anthropic model anyway."""
    for i, message in enumerate(messages):
        found = [f"messages[{i}].name"] if message.name else []
        found += [
            f"messages[{i}].content[{j}].image_url.detail"
            for j, part in enumerate(message.parts or ())
            if part.kind == "image" and part.detail not in DEFAULT_DETAIL
        ]
        if found:
            raise InvalidRequestError(
                f"{found[0]} has no place in Anthropic's Messages API ({model!r} cannot honour "
                f"it): send it to an OpenAI-compatible model, or leave {found[0]} out",
                param=found[0],
            )


def params_body(params: GenerationParams) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if params.temperature is not None:
        body["temperature"] = min(1.0, params.temperature)
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop_sequences"] = params.stop
    if params.json_schema is not None:
        body["output_format"] = {"type": "json_schema", "schema": params.json_schema}
    if params.tools:
        body["tools"] = [
            tool_json(tool.name, tool.description, tool.parameters, tool.strict)
            for tool in params.tools
        ]
        choice = tool_choice_json(params)
        if choice is not None:
            body["tool_choice"] = choice
    return body


def tool_json(
    name: str, description: str | None, parameters: dict[str, Any] | None, strict: bool | None
) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": name,
        "input_schema": parameters or {"type": "object", "properties": {}},
    }
    if description is not None:
        tool["description"] = description
    if strict is not None:
        tool["strict"] = strict
    return tool


def tool_choice_json(params: GenerationParams) -> dict[str, Any] | None:
    choice = params.tool_choice
    named = params.forced_tool()
    if named is not None:
        out: dict[str, Any] = {"type": "tool", "name": named}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif choice in (None, "auto"):
        out = {"type": "auto"}
    else:
        raise InvalidRequestError(f"tool_choice {choice!r} is not supported", param="tool_choice")
    if params.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # Anthropic's default is auto with parallel calls, as OpenAI's
    return out


def message_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    """One of our messages as Anthropic content blocks (empty text is left out: Anthropic
    refuses empty text blocks)."""
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        inner = part_blocks(message, where)
        if inner:
            result["content"] = inner
        return [result]
    blocks = part_blocks(message, where)
    for call in message.tool_calls or ():
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments(call)}
        )
    return blocks


def part_blocks(message: Message, where: str) -> list[dict[str, Any]]:
    if message.parts is None:
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        if part.kind == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif part.kind == "image":
            blocks.append(
                {"type": "image", "source": source_json(part.url, f"{where}.content[{j}]")}
            )
        elif part.kind == "file":
            blocks.append(document_json(part, f"{where}.content[{j}]"))
        else:
            raise InvalidRequestError(
                f"{where}.content[{j}]: Anthropic models take no {part.kind} parts",
                param=f"{where}.content[{j}]",
            )
    return blocks


def source_json(url: str | None, where: str) -> dict[str, Any]:
    """An image URL as Anthropic's source: base64 data for a `data:` URL, else the URL."""
    if not url:
        raise InvalidRequestError(f"{where}: an image part needs a URL", param=where)
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    found = DATA_URL.match(url)
    if found is None or not found["media"]:
        raise InvalidRequestError(
            f"{where}: a data: URL image must be `data:<media type>;base64,<data>`", param=where
        )
    return {"type": "base64", "media_type": found["media"], "data": found["data"]}


def document_json(part: ContentPart, where: str) -> dict[str, Any]:
    """An OpenAI `file` part carrying its data (`file.file_data`, a data: URL) as a document."""
    file = (part.raw or {}).get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise InvalidRequestError(
            f"{where}: only file parts with their data inline (file.file_data) can go to an "
            "Anthropic model",
            param=where,
        )
    if not data.startswith("data:"):
        data = "data:application/pdf;base64," + data
    return {"type": "document", "source": source_json(data, where)}


def arguments(call: ToolCall) -> dict[str, Any]:
    """A call's JSON arguments as the object Anthropic wants."""
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            f"tool call {call.id!r} has arguments that are not a JSON object: "
            f"{call.arguments[:80]!r}",
            param="messages",
        )
    return value


def anthropic_usage(raw: Any, model: str, known: Usage | None = None) -> Usage:
    """Anthropic's usage (checked by `token_count`) as ours; counts it leaves out keep the
    values of `known` (a stream reports them across two events)."""
    usage = usage_object(raw, model)
    known = known or Usage()

    def count(field: str, default: int) -> int:
        return token_count(usage, field, model) if usage.get(field) is not None else default

    base = known.input_tokens - known.cached_input_tokens - known.cache_write_tokens
    uncached = count("input_tokens", base)
    read = count("cache_read_input_tokens", known.cached_input_tokens)
    written = count("cache_creation_input_tokens", known.cache_write_tokens)
    return Usage(
        input_tokens=uncached + read + written,
        output_tokens=count("output_tokens", known.output_tokens),
        cached_input_tokens=read,
        cache_write_tokens=written,
    )


def parse_message(data: Any, model: str) -> Generation:
    """A non-streamed answer (`latency_s` is the caller's to set)."""
    try:
        blocks = data["content"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        calls = [
            ToolCall(b["id"], b["name"], json.dumps(b.get("input") or {}))
            for b in blocks
            if b.get("type") == "tool_use"
        ]
    except (KeyError, TypeError, AttributeError):
        raise UpstreamError(f"upstream model {model!r} returned a malformed message") from None
    return Generation(
        text=text,
        model=model,
        finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
        usage=anthropic_usage(data.get("usage"), model),
        tool_calls=calls or None,
    )


class StreamTranslator:
    """Anthropic stream events in, our `Delta`s out; `tool_use` blocks become tool-call pieces
    numbered as OpenAI numbers them (0, 1, ... in the order the calls start)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage = Usage()
        self.finish_reason = "stop"
        self.stopped = False
        """`message_stop` arrived: the answer is whole."""
        self._calls: dict[int, int] = {}
        """Content block index -> tool call index."""

    def event(self, name: str | None, payload: Any) -> list[Delta]:
        if not isinstance(payload, dict):
            raise UpstreamError(f"upstream model {self.model!r} sent a malformed stream event")
        kind = payload.get("type") or name
        if kind == "error":
            error = payload.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else error
            raise UpstreamError(f"upstream model {self.model!r} failed mid-stream: {message}")
        if kind == "message_start":
            message = payload.get("message") or {}
            self.usage = anthropic_usage(message.get("usage"), self.model, self.usage)
        elif kind == "content_block_start":
            return self._block_start(payload)
        elif kind == "content_block_delta":
            return self._block_delta(payload)
        elif kind == "message_delta":
            self.usage = anthropic_usage(payload.get("usage"), self.model, self.usage)
            reason = (payload.get("delta") or {}).get("stop_reason")
            self.finish_reason = STOP_REASONS.get(reason or "", self.finish_reason)
        elif kind == "message_stop":
            self.stopped = True
        return []

    def _block_start(self, payload: dict[str, Any]) -> list[Delta]:
        block = payload.get("content_block") or {}
        if block.get("type") != "tool_use":
            text = block.get("text") if block.get("type") == "text" else None
            return [Delta(text=text)] if text else []
        index = len(self._calls)
        self._calls[payload.get("index", index)] = index
        given = block.get("input")
        piece = ToolCallDelta(
            index,
            id=block.get("id"),
            name=block.get("name"),
            arguments=json.dumps(given) if given else "",
        )
        return [Delta(tool_calls=[piece])]

    def _block_delta(self, payload: dict[str, Any]) -> list[Delta]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [Delta(text=delta["text"])]
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._calls.get(payload.get("index", -1))
            if index is None:
                raise UpstreamError(
                    f"upstream model {self.model!r} streamed tool input for no tool_use block"
                )
            return [Delta(tool_calls=[ToolCallDelta(index, arguments=delta["partial_json"])])]
        return []

    def last(self) -> Delta:
        """The closing delta; a stream that ended before `message_stop` was cut off, and a
        cut-off answer must not pass for a whole one."""
        if not self.stopped:
            raise UpstreamError(f"upstream model {self.model!r} ended the stream early")
        return Delta(finish_reason=self.finish_reason, usage=self.usage)
