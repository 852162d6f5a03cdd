"""An optional judge model for summaries: ROUGE-L rewards word overlap, a judge reads meaning.

The judge sees the source, the reference summary and the candidate's summary, and answers with
one digit from 1 to 5; the score is mapped to [0, 1] so it sits on the same scale as ROUGE-L
and can carry the threshold. An answer without a digit scores 0: a judge that cannot answer
must not make a candidate look better.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence

import numpy as np

from smallfirst.evaluate.candidate import Prediction
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.metrics import MeanMetric
from smallfirst.models.registry import Registry
from smallfirst.types import ChatRequest, GenerationParams, Message

SOURCE_CHARS = 6000
JUDGE_SYSTEM = (
    "You grade summaries. Compare the candidate summary with the source and the reference "
    "summary. Score 5 if it is faithful and covers the key points, 3 if it is partly right or "
    "misses key points, 1 if it is wrong or off-topic. Reply with a single digit from 1 to 5."
)
_DIGIT = re.compile(r"[1-5]")


def judge_prompt(source: str, reference: str, summary: str) -> list[Message]:
    body = (
        f"Source:\n{source[:SOURCE_CHARS]}\n\nReference summary:\n{reference}\n\n"
        f"Candidate summary:\n{summary}\n\nScore (1-5):"
    )
    return [Message("system", JUDGE_SYSTEM), Message("user", body)]


def parse_score(text: str) -> float:
    """The first digit 1-5 in the judge's reply, mapped to [0, 1]; 0 when there is none."""
    found = _DIGIT.search(text)
    return (int(found.group()) - 1) / 4 if found else 0.0


async def judge_metric(
    registry: Registry,
    judge: str,
    examples: Sequence[Example],
    predictions: Sequence[Prediction | None],
    concurrency: int = 4,
) -> MeanMetric:
    """Ask the judge about every answered item; unanswered items score 0."""
    provider = registry.provider(judge)
    limit = asyncio.Semaphore(max(1, concurrency))
    params = GenerationParams(max_tokens=4, temperature=0.0)

    async def one(example: Example, prediction: Prediction | None) -> float:
        if prediction is None:
            return 0.0
        reference = example.expected[0] if isinstance(example.expected, list) else example.expected
        messages = judge_prompt(str(example.input), str(reference), str(prediction.output))
        async with limit:
            reply = await provider.chat(ChatRequest(messages, params))
        return parse_score(reply.text)

    scores = await asyncio.gather(*(one(e, p) for e, p in zip(examples, predictions, strict=True)))
    return MeanMetric("judge", np.array(scores, dtype=float))
