"""Tool calling for models that take a JSON schema (a grammar) but have no native tool calls.

The request's tools become a schema the answer is held to: `{"name": <a tool>, "arguments":
<that tool's parameters schema>}`, or, when `tool_choice` is `auto`, either such a call or
`{"answer": "<text>"}`. The grammar makes an invalid call impossible to write, so a call's
arguments always validate against its tool's schema (a call cut off by `max_tokens` is
closed into valid JSON and says `length`). The tools are listed in the system turn, and the
conversation's earlier calls and tool results are written into the transcript the way the
model is asked to write calls, so the next turn can use them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from smallfirst.types import ChatRequest, Delta, Message, Tool, ToolCall, Usage
from smallfirst.wire.tool_calls import deltas_of


@dataclass(slots=True)
class ToolPlan:
    request: ChatRequest
    """What the model is actually asked: text turns, a schema, the tools in the system turn."""
    calls_allowed: bool
    """False for `tool_choice: none` (and a conversation with tool turns but no tools)."""


def plan_tool_call(request: ChatRequest) -> ToolPlan | None:
    """None when the request has no tools and no tool turns (nothing to do)."""
    params = request.params
    turns = any(m.tool_calls or m.role == "tool" for m in request.messages)
    if not params.tools and not turns:
        return None
    messages = transcript(request.messages)
    choice = params.tool_choice or "auto"
    plain = replace(params, tools=None, tool_choice=None, parallel_tool_calls=None)
    if not params.tools or choice == "none":
        return ToolPlan(ChatRequest(messages, plain), calls_allowed=False)
    forced = params.forced_tool()
    offered = [tool for tool in params.tools if forced is None or tool.name == forced]
    schema = calls_schema(offered)
    if choice == "auto":
        schema = {"anyOf": [schema, ANSWER_SCHEMA]}
    instructions = tool_instructions(offered, may_answer=choice == "auto")
    system = "\n\n".join([*(m.content for m in messages if m.role == "system"), instructions])
    turns_only = [m for m in messages if m.role != "system"]
    asked = replace(plain, json_schema=schema, json_object=False)
    return ToolPlan(ChatRequest([Message("system", system), *turns_only], asked), True)


ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def call_schema(tool: Tool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.name},
            "arguments": tool.parameters or {"type": "object"},
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def calls_schema(tools: list[Tool]) -> dict[str, Any]:
    if len(tools) == 1:
        return call_schema(tools[0])
    return {"anyOf": [call_schema(tool) for tool in tools]}


def tool_instructions(tools: list[Tool], may_answer: bool) -> str:
    lines = ["You can call these functions:"]
    for tool in tools:
        described = f": {tool.description}" if tool.description else ""
        parameters = orjson.dumps(tool.parameters or {}).decode()
        lines.append(f"- {tool.name}{described} Parameters (JSON schema): {parameters}")
    lines.append(
        'To call one, answer with JSON: {"name": "<function>", "arguments": {...}}.'
        + (
            ' To answer without a call, answer with JSON: {"answer": "<text>"}.'
            if may_answer
            else ""
        )
    )
    return "\n".join(lines)


def transcript(messages: list[Message]) -> list[Message]:
    """Earlier calls as the JSON the model writes, results as tool turns naming their call."""
    names: dict[str, str] = {}
    out: list[Message] = []
    for message in messages:
        if message.tool_calls:
            written = [message.content] if message.content else []
            for call in message.tool_calls:
                names[call.id] = call.name
                written.append(call_json(call))
            out.append(Message("assistant", "\n".join(written)))
        elif message.role == "tool":
            name = names.get(message.tool_call_id or "", message.name or "the function")
            out.append(Message("tool", f"{name} returned: {message.content}"))
        else:
            out.append(Message(message.role, message.content))
    return out


def call_json(call: ToolCall) -> str:
    try:
        arguments = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        arguments = call.arguments
    return orjson.dumps({"name": call.name, "arguments": arguments}).decode()


def read_answer(text: str) -> tuple[str, list[ToolCall] | None]:
    """The model's JSON as (text, calls): a call, or `{"answer": ...}` as text."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text, None
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        arguments = orjson.dumps(data.get("arguments", {})).decode()
        call = ToolCall(id="call_" + uuid.uuid4().hex[:24], name=data["name"], arguments=arguments)
        return "", [call]
    if isinstance(data, dict) and isinstance(data.get("answer"), str):
        return data["answer"], None
    return text, None


async def tool_stream(deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    """The model's stream (held to a plan's schema) as an answer with tool calls: the JSON
    is read whole (a call is not text to show), then sent as one text delta or one piece
    per call."""
    parts: list[str] = []
    finish, usage = "stop", Usage()
    async for delta in deltas:
        parts.append(delta.text)
        if delta.finish_reason:
            finish = delta.finish_reason
        if delta.usage is not None:
            usage = delta.usage
    text, calls = read_answer("".join(parts))
    if calls:
        yield Delta(tool_calls=deltas_of(calls))
        finish = "tool_calls" if finish == "stop" else finish
    elif text:
        yield Delta(text=text)
    yield Delta(finish_reason=finish, usage=usage)
