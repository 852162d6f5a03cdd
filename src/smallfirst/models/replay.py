"""Replay: a model that answers from recorded outputs (or gold labels) instead of thinking.

It stands in for a model you cannot call here (a large cloud model in an offline trial, a
benchmark without API keys): each prompt gets the answer recorded for it in a CSV, optionally
degraded to a chosen accuracy and failing at a chosen error rate, at the price configured for
the model. The same book backs the in-process provider (`backend: replay`) and the HTTP server
(`smallfirst replay`, `smallfirst.testing.replay`).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import random
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from smallfirst.config import ModelConfig
from smallfirst.errors import ConfigError, InvalidRequestError, UpstreamError
from smallfirst.models.base import StreamingProvider
from smallfirst.models.prompting import plain_chat_prompt
from smallfirst.types import ChatRequest, CompletionRequest, Delta, Usage

ANSWER_COLUMNS = ("answer", "output", "response", "label", "gold")


class ReplayMiss(InvalidRequestError):
    code = "replay_miss"


class InjectedFailure(UpstreamError):
    """A failure the replay was asked to produce (`error_rate`)."""


def approx_tokens(text: str) -> int:
    """About four characters a token: replay has no tokenizer, and prices need a count."""
    return max(1, (len(text) + 3) // 4)


class ReplayBook:
    """Prompt -> recorded answer, with controlled accuracy and failure rate."""

    def __init__(
        self,
        records: dict[str, str],
        accuracy: float | None = None,
        error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not records:
            raise ConfigError("a replay needs at least one recorded answer")
        for name, value in (("accuracy", accuracy), ("error_rate", error_rate)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"replay {name} must be between 0 and 1, got {value}")
        self.records = records
        self.accuracy = accuracy
        self.error_rate = error_rate
        self.seed = seed
        self._answers = sorted(set(records.values()))
        self._by_length = sorted(records, key=len, reverse=True)
        self._failures = random.Random(seed)
        self._lock = threading.Lock()

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        prompt_column: str = "prompt",
        answer_column: str | None = None,
        **options: float | int | None,
    ) -> ReplayBook:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"replay outcomes file {path} does not exist")
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            answer_column = answer_column or next((c for c in ANSWER_COLUMNS if c in columns), None)
            if prompt_column not in columns or answer_column not in columns:
                raise ConfigError(
                    f"{path}: replay needs a {prompt_column!r} column and an answer column "
                    f"(one of {', '.join(ANSWER_COLUMNS)}); found {', '.join(columns)}"
                )
            records = {row[prompt_column]: row[answer_column] for row in reader}
        return cls(records, **options)  # type: ignore[arg-type]

    def recorded(self, text: str) -> tuple[str, str]:
        """(recorded prompt, its answer): an exact match, else the recorded prompt the request
        contains that ends last (requests wrap the question in instructions and examples, and
        the question comes last), the longest on a tie."""
        if text in self.records:
            return text, self.records[text]
        stripped = text.strip()
        if stripped in self.records:
            return stripped, self.records[stripped]
        found = [(text.rfind(p) + len(p), len(p), p) for p in self._by_length if p and p in text]
        if found:
            prompt = max(found)[2]
            return prompt, self.records[prompt]
        raise ReplayMiss(f"replay has no recorded answer for the prompt {text[:80]!r}")

    def reply(self, text: str) -> str:
        """The answer to give: the recorded one, or (at the configured accuracy) another one.

        Which items are answered wrongly is fixed by the seed and the prompt, so a rerun
        gives the same answers."""
        prompt, answer = self.recorded(text)
        if self.accuracy is None or len(self._answers) < 2:
            return answer
        digest = hashlib.sha256(f"{self.seed}:{prompt}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 < self.accuracy:
            return answer
        others = [a for a in self._answers if a != answer]
        return others[int.from_bytes(digest[8:16], "big") % len(others)]

    def maybe_fail(self) -> None:
        """Raise an injected failure for `error_rate` of the calls (a seeded sequence)."""
        with self._lock:
            fail = self.error_rate > 0 and self._failures.random() < self.error_rate
        if fail:
            raise InjectedFailure("replay: injected upstream failure", upstream_status=503)


def request_text(request: ChatRequest | CompletionRequest) -> str:
    """What replay looks up: the last user message, else the whole conversation as text."""
    if isinstance(request, CompletionRequest):
        return request.prompt
    users = [m.content for m in request.messages if m.role == "user"]
    return users[-1] if users else plain_chat_prompt(request.messages)


class ReplayProvider(StreamingProvider):
    """`backend: replay` with `options: {outcomes: file.csv, accuracy, error_rate, seed,
    latency_s, prompt_column, answer_column}`."""

    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        options = dict(config.options)
        outcomes = options.pop("outcomes", None)
        if not outcomes:
            raise ConfigError(f"model {config.name!r}: a replay backend needs options.outcomes")
        self.latency_s = float(options.pop("latency_s", 0.0))
        try:
            self.book = ReplayBook.from_csv(outcomes, **options)
        except TypeError as exc:
            raise ConfigError(f"model {config.name!r}: bad replay option: {exc}") from None

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        return self._stream(request_text(request), plain_chat_prompt(request.messages))

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self._stream(request.prompt, request.prompt)

    async def _stream(self, text: str, whole_prompt: str) -> AsyncIterator[Delta]:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self.book.maybe_fail()
        answer = self.book.reply(text)
        yield Delta(text=answer)
        usage = Usage(approx_tokens(whole_prompt), approx_tokens(answer))
        yield Delta(finish_reason="stop", usage=usage)
