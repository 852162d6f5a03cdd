"""The part of a request that a student or an example bank learns from: the last user turn
(a chat's text parts) or a completion's prompt. A task's fixed template sits in the system
prompt or around the input; `tasks.py` names the task from it, this is what varies."""

from __future__ import annotations

from smallfirst.types import ChatRequest, CompletionRequest


def input_text(request: ChatRequest | CompletionRequest) -> str:
    if isinstance(request, CompletionRequest):
        return request.prompt
    for message in reversed(request.messages):
        if message.role == "user":
            return message.content
    return ""


def whole_text(request: ChatRequest | CompletionRequest) -> str:
    """Every message's text (what a model would read), for token estimates and PII checks."""
    if isinstance(request, CompletionRequest):
        return request.prompt
    return "\n".join(message.content for message in request.messages)
