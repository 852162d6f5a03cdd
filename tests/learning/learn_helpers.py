"""Evidence for learning tests, written straight into a real SQLite ledger."""

from __future__ import annotations

import random
from pathlib import Path

from smallfirst.config import Config, LearnConfig, ModelConfig, Price
from smallfirst.learning.records import Evidence
from smallfirst.learning.store import LearningStore
from smallfirst.ledger.store import LedgerStore
from smallfirst.models.registry import Registry

TEMPLATES = {
    "weather": [
        "what's the weather in {}",
        "will it rain in {} tomorrow",
        "how cold is it in {} today",
        "is it sunny in {} this weekend",
    ],
    "music": [
        "play some jazz from {}",
        "put on the top songs of {}",
        "start my playlist about {}",
        "play the radio station of {}",
    ],
    "restaurant": [
        "book a table for two in {}",
        "reserve a restaurant in {} tonight",
        "find me a place to eat dinner in {}",
        "make a dinner reservation in {}",
    ],
}
CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Rome", "Cairo", "Quito", "Seoul", "Dakar"]


def intent_pairs(seed: int = 0) -> list[tuple[str, str]]:
    """120 templated (text, intent) pairs in a shuffled order (traffic is not sorted by label)."""
    pairs = [
        (template.format(city), intent)
        for intent, templates in TEMPLATES.items()
        for template in templates
        for city in CITIES
    ]
    random.Random(seed).shuffle(pairs)
    return pairs


def open_store(folder: Path) -> LearningStore:
    """A real SQLite ledger (migrated) and the learning tables in it."""
    return LearningStore(LedgerStore(f"sqlite:///{folder / 'ledger.db'}").engine)


def registry(base_url: str = "http://127.0.0.1:9/v1") -> Registry:
    """A small and a large model (the learner never calls them)."""
    models = [
        ModelConfig(name="small", backend="openai", base_url=base_url, tier="small",
                    price=Price(input=1, output=2)),
        ModelConfig(name="large", backend="openai", base_url=base_url, tier="large",
                    price=Price(input=10, output=30)),
    ]  # fmt: skip
    return Registry(Config(models=models))


def learn_config(**changes) -> LearnConfig:
    return LearnConfig(**{"min_evidence": 40, "target": 0.8, **changes})


def served(task: str, pairs: list[tuple[str, str]], start: float = 1000.0) -> list[Evidence]:
    """Requests served by the large model, its answers kept (what a student learns from)."""
    return [
        Evidence(f"{task}-s{i}", task, "served", "label", text, None, None, "large", label,
                 None, ts=start + i)
        for i, (text, label) in enumerate(pairs)
    ]  # fmt: skip


def compared(
    task: str,
    outcomes: list[bool],
    *,
    source: str = "shadow",
    kind: str = "json",
    small: str = "small",
    start: float = 1000.0,
    prefix: str = "c",
) -> list[Evidence]:
    """Cheaper answers compared with the large one: agree or not, one per outcome."""
    return [
        Evidence(f"{task}-{prefix}{i}", task, source, kind, f"input {i}", small,  # type: ignore[arg-type]
                 '{"a": 1}' if ok else '{"a": 2}', "large", '{"a": 1}', ok, ts=start + i)
        for i, ok in enumerate(outcomes)
    ]  # fmt: skip
