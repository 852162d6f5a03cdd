"""The one collector of a streamed answer: chunks off the wire, or our Deltas, folded into
the text, finish reason and usage of one answer.

The relay, the OpenAI-compatible provider and the gateway's own streams each feed one, so
"what did this stream say and what did it cost" is decided here only. Usage is kept raw and
checked when asked for (`usage`), so a bad count fails the request at its end, after the text
it carried was counted.
"""

from __future__ import annotations

from typing import Any

from smallfirst.types import Delta, Generation, TokenLogprob, Usage
from smallfirst.wire.parse import choice_text, decode_chunk, parse_logprobs, parse_usage
from smallfirst.wire.tool_calls import ToolCallAssembler, parse_tool_call_deltas


class StreamCollector:
    def __init__(self, model: str | None = None) -> None:
        self.model = model
        """Names the upstream in errors; None: "the upstream"."""
        self.parts: list[str] = []
        self.refusal_parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []
        self.tool_calls = ToolCallAssembler()
        self.finish_reason: str | None = None
        self.raw_usage: Any = None
        self.error: Any = None
        """The `error` object of a chunk that reported a failure mid-stream."""
        self.done = False
        """`[DONE]` arrived."""
        self._usage: Usage | None = None

    def add_data(self, data: bytes | str) -> list[Delta]:
        """One event's data, `[DONE]` or a chunk; the text and logprob pieces it carried."""
        if data.strip() in (b"[DONE]", "[DONE]"):
            self.done = True
            return []
        return self.add_chunk(decode_chunk(data, self.model))

    def add_chunk(self, chunk: dict[str, Any]) -> list[Delta]:
        if "error" in chunk:
            self.error = chunk["error"]
            return []
        pieces: list[Delta] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            text = choice_text(choice)
            logprobs = parse_logprobs(choice.get("logprobs"))
            delta = choice.get("delta")
            calls = (
                parse_tool_call_deltas(delta.get("tool_calls")) if isinstance(delta, dict) else []
            )
            refusal = delta.get("refusal") if isinstance(delta, dict) else None
            refusal = refusal if isinstance(refusal, str) else ""
            if text or logprobs or calls or refusal:
                pieces.append(
                    Delta(text=text, logprobs=logprobs, tool_calls=calls or None, refusal=refusal)
                )
                self.add_delta(pieces[-1])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if chunk.get("usage"):
            self.raw_usage = chunk["usage"]
        return pieces

    def add_delta(self, delta: Delta) -> None:
        if delta.text:
            self.parts.append(delta.text)
        if delta.logprobs:
            self.logprobs.extend(delta.logprobs)
        if delta.tool_calls:
            self.tool_calls.add(delta.tool_calls)
        if delta.refusal:
            self.refusal_parts.append(delta.refusal)
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self._usage = delta.usage

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def has_usage(self) -> bool:
        return self._usage is not None or self.raw_usage is not None

    def usage(self) -> Usage:
        """What the stream reported (none: zero); a broken count is an UpstreamError."""
        if self._usage is not None:
            return self._usage
        return parse_usage(self.raw_usage, self.model)

    def answer(self, model: str) -> Generation:
        """The stream as the one answer it amounts to."""
        return Generation(
            text=self.text,
            model=model,
            finish_reason=self.finish_reason or "stop",
            usage=self.usage(),
            logprobs=self.logprobs or None,
            tool_calls=self.tool_calls.calls(),
            refusal="".join(self.refusal_parts) or None,
        )
