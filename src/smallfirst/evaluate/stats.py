"""Bootstrap confidence intervals and latency percentiles.

A quality score on 50 examples can be off by ten points; the interval says how far. The
resample indices depend only on (n, resamples, seed), so every candidate is scored on the same
resamples: their intervals are comparable, and reruns give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from smallfirst.evaluate.metrics import Metric

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def resample_indices(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Index rows drawn with replacement, one at a time (memory stays O(n) for big sets);
    the same (n, resamples, seed) always yields the same rows, so candidates are paired."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, n, size=n)


def bootstrap(
    metric: Metric,
    n: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """Point estimate on all n items and a percentile interval over resamples."""
    point = metric.value(np.arange(n))
    if n == 0:
        return Estimate(point, point, point)
    values = np.array([metric.value(row) for row in resample_indices(n, resamples, seed)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Estimate(point, float(low), float(high))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), or 0 when there are no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0
