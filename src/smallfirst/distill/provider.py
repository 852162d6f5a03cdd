"""`backend: student`: a trained tiny classifier served as a model, the cascade's tier 0.

The last user message is the input (a task prompt's `Text: ` prefix is dropped, since the
student was trained on raw inputs). A confident prediction comes back as the label (with its
calibrated confidence as the answer's logprob); otherwise the call raises `DeferredError`
(422, code `student_deferred`), which a cascade reads as "escalate to the next rung" and a
direct caller sees as a clear, non-5xx refusal.

    models:
      - name: intent-student
        backend: student
        tier: tiny
        options: {path: student.joblib}
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

from smallfirst.config import ModelConfig
from smallfirst.distill.student import Prediction, TinyClassifier
from smallfirst.errors import ConfigError, DeferredError, InvalidRequestError
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    TokenLogprob,
    Usage,
)


def _why(prediction: Prediction, student: TinyClassifier) -> str:
    if prediction.reason == "unfamiliar":
        return (
            f"the input is unlike its training data: similarity {prediction.similarity:.3f} "
            f"< {student.similarity_threshold:.3f}"
        )
    if prediction.reason == "background":
        return "the input looks like background traffic, not this task"
    return f"confidence {prediction.confidence:.3f} < threshold {student.threshold:.3f}"


class StudentProvider:
    """A Provider answering classification requests from a student file."""

    def __init__(self, config: ModelConfig) -> None:
        path = config.options.get("path") or config.path
        if not path:
            raise ConfigError(
                f"model {config.name!r}: a student backend needs options.path "
                "(the file from `smallfirst distill student BANK --out FILE`)"
            )
        self.name = config.name
        self.path = Path(str(path)).expanduser()
        self._student: TinyClassifier | None = None

    @property
    def student(self) -> TinyClassifier:
        if self._student is None:
            self._student = TinyClassifier.load(self.path)
        return self._student

    async def _classify(self, text: str) -> Generation:
        if not text.strip():
            raise InvalidRequestError(
                f"model {self.name!r} classifies the last user message, which is empty",
                param="messages",
            )
        started = time.perf_counter()
        text = text.strip().removeprefix(f"{self.student.input_name}:").strip()
        prediction: Prediction = (await asyncio.to_thread(self.student.predict, [text]))[0]
        if not prediction.answered:
            raise DeferredError(
                f"student {self.name!r} is not sure ({_why(prediction, self.student)}); "
                "escalate to a larger model",
                confidence=prediction.confidence,
                threshold=self.student.threshold,
                label=prediction.label,
            )
        logprob = TokenLogprob(prediction.label, math.log(max(prediction.confidence, 1e-12)))
        return Generation(
            text=prediction.label,
            model=self.name,
            usage=Usage(0, 0),
            logprobs=[logprob],
            latency_s=time.perf_counter() - started,
        )

    async def chat(self, request: ChatRequest) -> Generation:
        user = [m.content for m in request.messages if m.role == "user"]
        if not user:
            raise InvalidRequestError(
                f"model {self.name!r} needs a user message to classify", param="messages"
            )
        return await self._classify(user[-1])

    async def complete(self, request: CompletionRequest) -> Generation:
        return await self._classify(request.prompt)

    async def _stream(self, generation: Generation) -> AsyncIterator[Delta]:
        yield Delta(
            text=generation.text,
            finish_reason=generation.finish_reason,
            usage=generation.usage,
            logprobs=generation.logprobs,
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        async for delta in self._stream(await self.chat(request)):
            yield delta

    async def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        async for delta in self._stream(await self.complete(request)):
            yield delta

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise InvalidRequestError(f"model {self.name!r} (a student classifier) has no embeddings")

    async def aclose(self) -> None:
        return None
