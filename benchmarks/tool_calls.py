"""Tool calls on the embedded Gemma 3 270M through the grammar: do the arguments validate?

Each request is a SNIPS validation utterance with the seven SNIPS intents offered as
functions (each function's parameters: that intent's slot names, as optional strings, no
others allowed; built from the train split) and `tool_choice: required`. The table counts
calls whose arguments validate against the called function's schema (the grammar's
promise: every call that finished), calls that name the gold intent's function (what a
270M base model gets right, reported as it is), and finish reasons.

    nice .venv/bin/python benchmarks/tool_calls.py            # 70 requests (10 per intent)
    nice .venv/bin/python benchmarks/tool_calls.py --per-intent 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from smallfirst.evaluate.stats import Rate
from smallfirst.models.registry import Registry
from smallfirst.types import ChatRequest, GenerationParams, Message, Tool

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks" / "snips"
INTENTS = (
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
)


def utterances(split: str, intent: str) -> list[list[dict[str, str]]]:
    path = DATA / f"{split}_{intent}.json"
    return [u["data"] for u in json.loads(path.read_text(encoding="utf-8"))[intent]]


def tools_from_train() -> list[Tool]:
    """One function per intent; its parameters are the slots seen in its train split."""
    tools = []
    for intent in INTENTS:
        slots = sorted(
            {p["entity"] for u in utterances("train", intent) for p in u if "entity" in p}
        )
        schema = {
            "type": "object",
            "properties": {slot: {"type": "string"} for slot in slots},
            "additionalProperties": False,
        }
        tools.append(Tool(intent, f"SNIPS intent {intent}", schema))
    return tools


@dataclass
class Outcome:
    intent: str
    called: str | None
    valid: bool
    finish: str
    seconds: float


async def run(per_intent: int, seed: int, max_tokens: int) -> list[Outcome]:
    rng = random.Random(seed)
    tools = tools_from_train()
    schemas = {tool.name: tool.parameters for tool in tools}
    items = []
    for intent in INTENTS:
        pool = utterances("validate", intent)
        items += [
            (intent, "".join(p["text"] for p in u).strip()) for u in rng.sample(pool, per_intent)
        ]
    registry = Registry()
    provider = registry.raw_provider("default")  # the model itself: no failover deadline
    outcomes = []
    try:
        for intent, text in items:
            params = GenerationParams(
                max_tokens=max_tokens, temperature=0.0, tools=tools, tool_choice="required"
            )
            started = time.perf_counter()
            answer = await provider.chat(ChatRequest([Message("user", text)], params))
            seconds = time.perf_counter() - started
            call = (answer.tool_calls or [None])[0]
            valid = False
            if call is not None and call.name in schemas:
                try:
                    jsonschema.validate(json.loads(call.arguments), schemas[call.name] or {})
                    valid = True
                except (ValueError, jsonschema.ValidationError):
                    valid = False
            outcomes.append(
                Outcome(intent, call.name if call else None, valid, answer.finish_reason, seconds)
            )
    finally:
        await registry.aclose()
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    n = len(outcomes)
    finished = [o for o in outcomes if o.finish == "tool_calls"]
    rows = [
        ("calls made", Rate(sum(o.called is not None for o in outcomes), n)),
        ("arguments valid, all calls", Rate(sum(o.valid for o in outcomes), n)),
        ("arguments valid, finished calls", Rate(sum(o.valid for o in finished), len(finished))),
        ("function = gold intent", Rate(sum(o.called == o.intent for o in outcomes), n)),
    ]
    lines = ["| measure | share (95% Wilson CI, N) |", "|---|---|"]
    lines += [f"| {name} | {rate} |" for name, rate in rows]
    finishes = Counter(o.finish for o in outcomes)
    seconds = sorted(o.seconds for o in outcomes)
    lines.append(f"| finish reasons | {dict(finishes)} |")
    lines.append(
        f"| seconds per request, median | {seconds[len(seconds) // 2]:.2f} |" if seconds else ""
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    outcomes = asyncio.run(run(args.per_intent, args.seed, args.max_tokens))
    print(table(outcomes))


if __name__ == "__main__":
    main()
