"""Confidence intervals and latency percentiles.

A quality score on 50 examples can be off by ten points; the interval says how far. Metrics
are bootstrapped; the resample indices depend only on (n, resamples, seed), so every candidate
is scored on the same resamples and reruns give the same numbers. A right/wrong rate (accuracy,
exact match, schema validity) gets the Wilson score interval instead: the bootstrap of a
perfect score on 4 items is [1, 1], which would let four lucky answers pass any bar, while
Wilson says [0.51, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from smallfirst.evaluate.metrics import MeanMetric, Metric

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float
    method: str = "bootstrap"
    """`bootstrap` (percentile) or `wilson` (score interval of a right/wrong rate)."""

    def to_json(self) -> dict[str, float | str]:
        return {"value": self.value, "low": self.low, "high": self.high, "method": self.method}

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


def estimate(
    metric: Metric,
    n: int,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> Estimate:
    """Wilson for a mean of 0/1 scores, the bootstrap for everything else."""
    if isinstance(metric, MeanMetric) and n and np.isin(metric.scores, (0.0, 1.0)).all():
        successes = int(metric.scores.sum())
        low, high = wilson(successes, n, level)
        return Estimate(successes / n, low, high, "wilson")
    return bootstrap(metric, n, resamples, level, seed)


def wilson(successes: int, n: int, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else float(centre - half)
    high = 1.0 if successes == n else float(centre + half)
    return low, high


def wilson_bound(
    successes: np.ndarray | float,
    n: np.ndarray | float,
    level: float = DEFAULT_LEVEL,
    side: str = "lower",
) -> np.ndarray:
    """One-sided Wilson score bound of a rate: `level` of the time the true rate is above it
    (`lower`) or below it (`upper`). Vectorised; n = 0 gives 0 (lower) or 1 (upper).

    Thresholds are picked on this bound, not on the point estimate: "97% right on 60 held-out
    answers" is a lower bound of about 0.90, and a threshold chosen on the point estimate
    misses its target on new data about half the time.
    """
    k = np.asarray(successes, dtype=float)
    total = np.asarray(n, dtype=float)
    z = NormalDist().inv_cdf(level)
    safe = np.maximum(total, 1.0)
    p = k / safe
    centre = (p + z * z / (2 * safe)) / (1 + z * z / safe)
    half = z / (1 + z * z / safe) * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    if side == "lower":
        return np.where(total > 0, np.where(k <= 0, 0.0, centre - half), 0.0)
    if side == "upper":
        return np.where(total > 0, np.where(k >= total, 1.0, centre + half), 1.0)
    raise ValueError(f"side must be lower or upper, not {side!r}")


def mean_lower_bound(values: np.ndarray, level: float = DEFAULT_LEVEL) -> float:
    """One-sided lower bound of a mean (normal approximation: mean - z * sd / sqrt(n)).

    For paired differences, e.g. per-prompt quality of a routing minus the target share of the
    best model's, "the bound is >= 0" is "the target is met with `level` confidence".
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("-inf")
    z = NormalDist().inv_cdf(level)
    return float(values.mean() - z * values.std(ddof=1) / np.sqrt(len(values)))


@dataclass(frozen=True, slots=True)
class Rate:
    """A right/wrong rate as printed: value, two-sided interval, one-sided lower bound, N."""

    successes: int
    n: int
    level: float = DEFAULT_LEVEL

    @property
    def value(self) -> float:
        return self.successes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.successes, self.n, self.level) if self.n else (0.0, 1.0)

    @property
    def lower(self) -> float:
        return float(wilson_bound(self.successes, self.n, self.level))

    @property
    def upper(self) -> float:
        return float(wilson_bound(self.successes, self.n, self.level, "upper"))

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value:.3f} ({self.level:.0%} CI {low:.3f}-{high:.3f}, N={self.n})"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), or 0 when there are no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0
