"""The report's two pictures, drawn with matplotlib's Agg canvas and embedded as base64 PNG.

`Figure` is used directly, not pyplot: no global state, no GUI backend, safe in a server
thread, and the report stays one self-contained file with no CDN.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from matplotlib.figure import Figure

from smallfirst.evaluate.runner import CandidateResult

WINNER_COLOUR = "#1b7f3b"
OTHER_COLOUR = "#3465a4"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def cost_quality_png(
    results: Sequence[CandidateResult], metric: str, threshold: float, winner: str | None
) -> str:
    """Quality (with its interval) against $ per 1,000 requests; the bar as a dashed line."""
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    for result in results:
        estimate = result.metrics[metric]
        colour = WINNER_COLOUR if result.name == winner else OTHER_COLOUR
        axes.errorbar(
            result.usd_per_1k,
            estimate.value,
            yerr=[[estimate.value - estimate.low], [estimate.high - estimate.value]],
            fmt="o",
            color=colour,
            capsize=4,
        )
        axes.annotate(
            result.name,
            (result.usd_per_1k, estimate.value),
            xytext=(6, 6),
            textcoords="offset points",
            fontsize=8,
        )
    axes.axhline(
        threshold, linestyle="--", color="#c4302b", linewidth=1, label=f"bar {threshold:g}"
    )
    costs = [r.usd_per_1k for r in results]
    if any(c > 0 for c in costs):
        smallest = min(c for c in costs if c > 0)
        axes.set_xscale("symlog", linthresh=smallest)
    axes.margins(x=0.15, y=0.08)
    axes.set_xlabel("$ per 1,000 requests")
    axes.set_ylabel(f"{metric} (95% interval)")
    axes.set_title("cost vs quality")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def latency_png(results: Sequence[CandidateResult], winner: str | None) -> str:
    """p50 and p95 latency per candidate, as horizontal bars."""
    figure = Figure(figsize=(6.4, 0.6 + 0.5 * max(1, len(results))))
    axes = figure.add_subplot()
    names = [r.name for r in results]
    positions = list(range(len(results)))
    p95 = [r.latency_p95_s for r in results]
    p50 = [r.latency_p50_s for r in results]
    colours = [WINNER_COLOUR if n == winner else OTHER_COLOUR for n in names]
    axes.barh(positions, p95, color="#d3d7cf", label="p95")
    axes.barh(positions, p50, color=colours, height=0.5, label="p50")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlabel("seconds per request")
    axes.set_title("latency")
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)
