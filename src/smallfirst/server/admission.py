"""A request's worst-case tokens and cost, estimated before any model runs (for admission).

A key's budget holds under concurrency only if no admitted request can cost more than it
reserved, so the estimate is meant as an upper bound of what an upstream bills:

- text: a token per 4 ASCII characters (plus one) and a token per UTF-8 byte of anything
  else (byte-level tokenizers never use more tokens than bytes; ASCII prose, code and JSON
  average about 4 characters a token). A chat template's few tokens per message are not
  counted;
- everything an upstream turns into prompt: every message's content parts, names and tool
  calls, and the request's tool / function definitions, `tool_choice` and `response_format`
  (as compact JSON);
- images by OpenAI's tile rule: 85 tokens at `detail: low`, else 85 + 170 per 512 px tile of
  the image scaled into 2048 x 2048 and then to 768 px on its short side; the size is not
  known here, so the rule's maximum, 8 tiles (1,445 tokens), is used;
- the answer: `max_tokens` (or `DEFAULT_OUTPUT_ESTIMATE` when the client set none);
- a cascade: every rung may answer and every check may run, so its bound is the sum over the
  rungs of the dearest candidate's answer plus the checks' extra calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from smallfirst.models.registry import ModelEntry
from smallfirst.routing.checks import JUDGE_PROMPT, AgreementCheck, JudgeCheck
from smallfirst.server.limits import DEFAULT_OUTPUT_ESTIMATE
from smallfirst.types import Usage

if TYPE_CHECKING:
    from smallfirst.routing.cascade import Cascade

CHARS_PER_TOKEN = 4
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
IMAGE_MAX_TILES = 8
"""An image scaled into 2048 x 2048 and then to 768 px on its short side covers at most
4 x 2 tiles of 512 px (2048 x 768)."""
JUDGE_OUTPUT_TOKENS = 3
"""`JudgeCheck` asks its judge for a one-word verdict with `max_tokens=3`."""
IMAGE_PARTS = ("image_url", "input_image")
PROMPT_FIELDS = ("tools", "functions", "tool_choice", "function_call", "response_format")
"""Top-level request fields that an upstream renders into the prompt and bills."""


@dataclass(frozen=True, slots=True)
class Estimate:
    prompt_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def text_tokens(text: str) -> int:
    """At most this many tokens (0 for no text): a token per 4 ASCII characters, rounded up
    by one, plus one per UTF-8 byte of any other character."""
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return ascii_chars // CHARS_PER_TOKEN + 1 + other_bytes


def image_tokens(part: dict[str, Any]) -> int:
    """OpenAI's rule for one image part: the largest count for its detail level."""
    image = part.get("image_url")
    detail = image.get("detail") if isinstance(image, dict) else None
    if detail == "low":
        return IMAGE_BASE_TOKENS
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * IMAGE_MAX_TILES


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _content(content: Any, texts: list[str]) -> int:
    """Adds the content's text to `texts`; returns its images' tokens."""
    if isinstance(content, str):
        texts.append(content)
        return 0
    if content is None:
        return 0
    if not isinstance(content, list):
        texts.append(_json(content))
        return 0
    images = 0
    for part in content:
        if isinstance(part, dict) and part.get("type") in IMAGE_PARTS:
            images += image_tokens(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            texts.append(_json(part))
    return images


def prompt_tokens(data: dict[str, Any]) -> int:
    """The bound for a chat (`messages`) or completions (`prompt`) request body: all its text
    counted together, plus its images."""
    texts: list[str] = []
    images = 0
    messages = data.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            texts.append(_json(message))
            continue
        images += _content(message.get("content"), texts)
        extra = {k: v for k, v in message.items() if k not in ("role", "content")}
        if extra:  # name, tool_calls, tool_call_id, function_call
            texts.append(_json(extra))
    images += _content(data.get("prompt"), texts)
    texts.extend(_json(data[name]) for name in PROMPT_FIELDS if data.get(name) is not None)
    return text_tokens("".join(texts)) + images


def output_tokens(max_tokens: int | None) -> int:
    return max_tokens or DEFAULT_OUTPUT_ESTIMATE


def for_model(model: ModelEntry, prompt: int, max_tokens: int | None) -> Estimate:
    out = output_tokens(max_tokens)
    return Estimate(prompt, out, model.price.cost(Usage(prompt, out)))


def for_cascade(cascade: Cascade, prompt: int, max_tokens: int | None) -> Estimate:
    """Every rung may run (a router only skips rungs, failover only swaps in a same-tier
    spare), so the bound adds up each rung's dearest candidate and its checks' calls."""
    registry = cascade.registry
    out = output_tokens(max_tokens)
    usage = Usage(prompt, out)
    last = len(cascade.rungs) - 1
    cost = 0.0
    for rung in range(len(cascade.rungs)):
        answer = max(registry.get(name).price.cost(usage) for name in cascade.candidates(rung))
        cost += answer
        if rung == last and not cascade.config.check_last_rung:
            continue
        for check in cascade.checks:
            if isinstance(check, AgreementCheck):
                cost += (check.samples - 1) * answer
            elif isinstance(check, JudgeCheck):
                judge_prompt = prompt + out + text_tokens(JUDGE_PROMPT)
                judge = registry.get(check.model).price
                cost += judge.cost(Usage(judge_prompt, JUDGE_OUTPUT_TOKENS))
    return Estimate(prompt, out, cost)


def delivered_usage(estimate: Estimate | None, parts: Sequence[str]) -> Usage:
    """What a client that left mid-stream received, when the upstream sent no usage: the
    prompt's bound (the upstream read all of it) and, for the answer, the larger of one token
    per relayed text delta and the text's token bound."""
    output = max(len(parts), text_tokens("".join(parts)))
    return Usage(estimate.prompt_tokens if estimate is not None else 0, output)
