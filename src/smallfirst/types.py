"""Plain data passed between router, providers, ledger and server.

Dataclasses, not pydantic: they are built on the hot path and never validated twice.
Validation of user input happens once, at the edge (server request models, config).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
Tier = Literal["tiny", "small", "medium", "large"]
TIERS: tuple[Tier, ...] = ("tiny", "small", "medium", "large")


@dataclass(slots=True)
class Message:
    role: Role
    content: str

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> Message:
        """Accept OpenAI message dicts, flattening content parts to text."""
        content = raw.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return cls(role=raw["role"], content=content or "")


@dataclass(slots=True)
class GenerationParams:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    json_schema: dict[str, Any] | None = None
    """Constrain the output to JSON matching this schema (grammar or response_format)."""
    grammar: str | None = None
    """A raw GBNF grammar; only the embedded backend honours it."""


@dataclass(slots=True)
class ChatRequest:
    messages: list[Message]
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(slots=True)
class CompletionRequest:
    prompt: str
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

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


@dataclass(slots=True)
class Delta:
    """One streamed piece. The last delta has `finish_reason` and `usage` set."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    logprobs: list[TokenLogprob] | None = None
