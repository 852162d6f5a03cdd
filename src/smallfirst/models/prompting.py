"""Turning chat messages into a prompt for models without a chat template (base models).

A base model continues text, so the prompt is a transcript that makes "the assistant's next
line" the likely continuation: a one-line preamble, one worked exchange to show the format
(unless the caller gave a system message), then the conversation ending with the cue.
"""

from __future__ import annotations

from smallfirst.types import Message

PLAIN_CUE = "Assistant:"
ROLE_LABELS = {"user": "User", "assistant": "Assistant", "tool": "Tool"}
PREAMBLE = (
    "Below is a conversation between a user and a helpful assistant. "
    "The assistant answers the user's question correctly and briefly."
)
EXAMPLE_TURNS = [
    Message("user", "What is the capital of Italy?"),
    Message("assistant", "The capital of Italy is Rome."),
]
TURN_STOPS = ["\nUser:", "\nAssistant:", "\n\n"]
"""End the assistant's turn before a base model invents the next one; a blank line ends it too."""


def plain_chat_prompt(messages: list[Message]) -> str:
    has_system = any(m.role == "system" for m in messages)
    blocks: list[str] = [] if has_system else [PREAMBLE]
    if not has_system:
        blocks.append(_turns(EXAMPLE_TURNS))
    system = "\n".join(m.content.strip() for m in messages if m.role == "system")
    if system:
        blocks.append(system)
    turns = [m for m in messages if m.role != "system"]
    blocks.append(_turns(turns) + f"\n{PLAIN_CUE}" if turns else PLAIN_CUE)
    return "\n\n".join(blocks)


def _turns(messages: list[Message]) -> str:
    return "\n".join(f"{ROLE_LABELS[m.role]}: {m.content.strip()}" for m in messages)
