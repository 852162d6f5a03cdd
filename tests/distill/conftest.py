"""Shared pieces for distillation tests: a teacher registry over a scripted server, task specs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from smallfirst.config import Config, FailoverConfig, ModelConfig, Price
from smallfirst.models.registry import Registry

SENTIMENT = {
    "name": "sentiment",
    "kind": "classify",
    "instructions": "",
    "input_name": "Text",
    "labels": ["positive", "negative"],
}


FAST_RETRIES = FailoverConfig(retries=2, backoff_s=0.0, max_backoff_s=0.0)
"""The default three attempts per call, without waiting between them."""


def teacher_registry(base_url: str, output_per_mtok: float = 1000.0) -> Registry:
    teacher = ModelConfig(
        name="teacher",
        backend="openai",
        base_url=base_url,
        tier="large",
        price=Price(input=0.0, output=output_per_mtok),
        timeout_s=5,
    )
    return Registry(Config(models=[teacher], failover=FAST_RETRIES))


class HashEmbedder:
    """Deterministic unit vectors from a text hash: exact search can be checked by brute force."""

    name = "hash-test"
    dim = 16

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            vec = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(vec / np.linalg.norm(vec))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


@pytest.fixture
def sentiment_task() -> dict:
    return dict(SENTIMENT)


INTENT_TEMPLATES = {
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
CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo"]


def intent_pairs() -> list[tuple[str, str]]:
    """60 templated (text, intent) pairs: enough for a MiniLM student in tests."""
    return [
        (template.format(city), intent)
        for intent, templates in INTENT_TEMPLATES.items()
        for template in templates
        for city in CITIES
    ]
