"""Loaders for the task sets in ../shared/data/tasks, as (example bank, evaluation items).

Every split is honest: examples for few-shot prompts come from the train (or validation)
split, evaluation items from a different split, both sampled with a fixed seed.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
SNIPS_INTENTS = {
    "AddToPlaylist": "add a song or artist to a playlist",
    "BookRestaurant": "reserve a table at a restaurant",
    "GetWeather": "ask about the weather",
    "PlayMusic": "play some music",
    "RateBook": "give a rating to a book",
    "SearchCreativeWork": "find a book, film, song, game or TV show",
    "SearchScreeningEvent": "find movie showtimes or a cinema",
}
WEATHER_SLOTS = {
    "city": "city name",
    "state": "state or region",
    "country": "country",
    "timeRange": "when, e.g. 'tomorrow' or 'at 5 pm'",
    "condition_description": "weather condition, e.g. 'rain', 'snow'",
    "condition_temperature": "temperature word, e.g. 'hot', 'freezing'",
    "geographic_poi": "a named place such as a park or mountain",
    "spatial_relation": "e.g. 'near', 'faraway'",
    "current_location": "e.g. 'here', 'my location'",
}


@dataclass
class TaskSet:
    name: str
    spec: dict[str, Any]
    """Task spec fields (kind, labels or schema, input_name)."""
    bank: list[dict[str, Any]]
    """`{input, output}` examples for few-shot prompts (train split)."""
    items: list[tuple[str, Any]]
    """(input, gold output) to evaluate on (held-out split)."""


def _sample(rows: list[Any], n: int | None, seed: int) -> list[Any]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]


def sentiment(n: int, bank_size: int, seed: int) -> TaskSet:
    folder = DATA / "tweeteval_sentiment"
    names = {"0": "negative", "1": "neutral", "2": "positive"}

    def read(split: str) -> list[tuple[str, str]]:
        texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
        labels = (folder / f"{split}_labels.txt").read_text(encoding="utf-8").splitlines()
        return [(t.strip(), names[y.strip()]) for t, y in zip(texts, labels, strict=True)]

    spec = {
        "kind": "classify",
        "name": "sentiment",
        "input_name": "Tweet",
        "labels": {
            "negative": "the writer is unhappy, angry or critical",
            "neutral": "no clear feeling, or facts and news",
            "positive": "the writer is happy, pleased or enthusiastic",
        },
    }
    bank = [{"input": t, "output": y} for t, y in _sample(read("val"), bank_size, seed)]
    return TaskSet("tweeteval sentiment", spec, bank, _sample(read("test"), n, seed))


def banking77(n: int, bank_size: int, seed: int) -> TaskSet:
    folder = DATA / "banking77"
    labels = json.loads((folder / "categories.json").read_text())

    def read(split: str) -> list[tuple[str, str]]:
        with (folder / f"{split}.csv").open(encoding="utf-8") as handle:
            return [(row["text"], row["category"]) for row in csv.DictReader(handle)]

    spec = {"kind": "classify", "name": "banking77", "input_name": "Message", "labels": labels}
    bank = [{"input": t, "output": y} for t, y in _sample(read("train"), bank_size, seed)]
    return TaskSet("banking77 intent", spec, bank, _sample(read("test"), n, seed))


def _snips(split: str, intent: str) -> list[list[dict[str, str]]]:
    path = DATA / "snips" / f"{split}_{intent}.json"
    return [u["data"] for u in json.loads(path.read_text(encoding="utf-8"))[intent]]


def snips_intent(n: int, bank_size: int, seed: int) -> TaskSet:
    def read(split: str) -> list[tuple[str, str]]:
        rows = []
        for intent in SNIPS_INTENTS:
            rows += [("".join(p["text"] for p in u).strip(), intent) for u in _snips(split, intent)]
        return rows

    spec = {"kind": "classify", "name": "snips", "input_name": "Request", "labels": SNIPS_INTENTS}
    bank = [{"input": t, "output": y} for t, y in _sample(read("train"), bank_size, seed)]
    return TaskSet("snips intent", spec, bank, _sample(read("validate"), n, seed))


def weather_fields(pieces: list[dict[str, str]]) -> dict[str, str]:
    """Gold fields of one snips utterance: the first tagged piece of each slot."""
    fields: dict[str, str] = {}
    for piece in pieces:
        if "entity" in piece and piece["entity"] in WEATHER_SLOTS:
            fields.setdefault(piece["entity"], piece["text"].strip())
    return fields


def snips_slots(n: int, bank_size: int, seed: int) -> TaskSet:
    schema = {
        "type": "object",
        "properties": {
            key: {"anyOf": [{"type": "string"}, {"type": "null"}], "description": about}
            for key, about in WEATHER_SLOTS.items()
        },
    }
    spec = {
        "kind": "extract",
        "name": "weather_slots",
        "input_name": "Request",
        "schema": schema,
        "max_tokens": 128,
    }

    def read(split: str) -> list[tuple[str, dict[str, str]]]:
        return [
            ("".join(p["text"] for p in u).strip(), weather_fields(u))
            for u in _snips(split, "GetWeather")
        ]

    bank = [{"input": t, "output": f} for t, f in _sample(read("train"), bank_size, seed)]
    return TaskSet("snips GetWeather slots", spec, bank, _sample(read("validate"), n, seed))


SETS = {
    "sentiment": sentiment,
    "banking77": banking77,
    "snips": snips_intent,
    "slots": snips_slots,
}
