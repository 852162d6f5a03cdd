"""Cheap prompt signals beside the embedding: length, code, maths, constraints, choices.

They say how hard a prompt is in ways a topic embedding does not (a long multi-constraint
request vs a one-liner on the same topic). Standardised on the training prompts and appended
to the unit embedding at FEATURE_WEIGHT, so kNN and the linear models see both.
"""

from __future__ import annotations

import re

import numpy as np

FEATURE_NAMES = (
    "log chars",
    "log lines",
    "code",
    "maths",
    "digit share",
    "constraint words",
    "questions",
    "answer choices",
)
FEATURE_WEIGHT = 0.5
_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|[{};]\s*$|\bimport |#include|=>", re.M)
_MATHS = re.compile(r"[=+\-*/^]\s*\d|\\frac|\\sqrt|\$[^$]+\$|\b(solve|integral|derivative|prove)\b")
_CONSTRAINTS = re.compile(
    r"\b(must|exactly|at least|at most|no more than|only|without|always|never|format|json|"
    r"words?|sentences?|bullet|step by step|list)\b",
    re.I,
)
_CHOICES = re.compile(r"^\s*\(?[A-D][).:]\s", re.M)


def prompt_features(texts: list[str]) -> np.ndarray:
    """(n, len(FEATURE_NAMES)) raw features, one row per prompt."""
    rows = []
    for text in texts:
        chars = max(len(text), 1)
        rows.append(
            [
                np.log1p(len(text)),
                np.log1p(text.count("\n")),
                np.log1p(len(_CODE.findall(text))),
                np.log1p(len(_MATHS.findall(text))),
                sum(c.isdigit() for c in text) / chars,
                np.log1p(len(_CONSTRAINTS.findall(text))),
                np.log1p(text.count("?")),
                np.log1p(len(_CHOICES.findall(text))),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(FEATURE_NAMES))


def feature_scaler(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the training features (spread 1 where a feature never varies)."""
    spread = train.std(axis=0)
    return train.mean(axis=0), np.where(spread > 1e-9, spread, 1.0)


def with_features(
    vectors: np.ndarray,
    features: np.ndarray,
    scaler: tuple[np.ndarray, np.ndarray],
    weight: float = FEATURE_WEIGHT,
) -> np.ndarray:
    """Unit embedding + standardised features (block norm ~weight), renormalised."""
    mean, spread = scaler
    z = np.clip((features - mean) / spread, -4.0, 4.0) * weight / np.sqrt(features.shape[1])
    joined = np.hstack([vectors, z.astype(np.float32)])
    return (joined / np.maximum(np.linalg.norm(joined, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
