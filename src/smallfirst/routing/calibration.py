"""Set a router's threshold from what a person means: a share of traffic or a quality target.

- `large_share=0.2`: on *your* prompts, about 20% go to the large (top-price) model(s).
- `quality_target=0.95`: keep mean quality at 95% of the best single model's, as cheaply as
  possible; predicted quality on prompts alone, or measured quality when outcomes are given.

A share is found by bisection: as the threshold rises, every choice moves to a cheaper model,
so the large share only falls. Measured quality need not fall with it (a cheaper model is
sometimes right where the dearer is wrong), so a quality target is checked at every threshold
where some choice changes (threshold 0 included) and the largest meeting it wins. It is met
when the one-sided 95% lower bound of the per-prompt difference (routed quality - target x the best
model's quality on the same prompt) is >= 0, not when the point estimate is: on a small
calibration set the point estimate overshoots new traffic about half the time. When no
threshold meets the target, that is an error saying what is reachable, not a silent 0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from smallfirst.evaluate.stats import DEFAULT_LEVEL, mean_lower_bound
from smallfirst.routing.metrics import choose
from smallfirst.routing.outcomes import OutcomesError, prompt_turns
from smallfirst.routing.router_file import Calibration, RouterModel

STEPS = 60


def load_prompts(path: str | Path) -> list[list[str]]:
    """Prompts as user-turn lists from .jsonl (prompt/question/messages), .csv or .txt."""
    path = Path(path)
    if not path.exists():
        raise OutcomesError(f"prompt file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    elif path.suffix in (".jsonl", ".json"):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise OutcomesError(f"{path}: not valid JSONL ({exc})") from None
    else:
        rows = [{"prompt": line} for line in text.splitlines() if line.strip()]
    if not rows:
        raise OutcomesError(f"{path}: no prompts in the file")
    prompts = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            row = {"prompt": row}
        key = next((k for k in ("messages", "prompt", "question", "text") if k in row), None)
        if key is None:
            raise OutcomesError(f"{path}: row {i + 1} has no prompt/messages field: {list(row)}")
        prompts.append(prompt_turns(row[key], str(path), i))
    return prompts


def large_share(router: RouterModel, pred: np.ndarray, threshold: float) -> float:
    large = [router.models.index(m) for m in router.large_models()]
    picked = choose(pred, router.norm_costs(), threshold)
    return float(np.isin(picked, large).mean())


def mean_quality(router: RouterModel, pred: np.ndarray, truth: np.ndarray, t: float) -> float:
    picked = choose(pred, router.norm_costs(), t)
    return float(truth[np.arange(len(truth)), picked].mean())


def meets_quality(
    router: RouterModel,
    pred: np.ndarray,
    truth: np.ndarray,
    t: float,
    target: float,
    level: float | None = DEFAULT_LEVEL,
) -> bool:
    """Whether routing at `t` keeps quality >= target x the best single model's (its lower
    bound at `level`; None: the point estimate)."""
    picked = choose(pred, router.norm_costs(), t)
    best = int(truth.mean(axis=0).argmax())
    diff = truth[np.arange(len(truth)), picked] - target * truth[:, best]
    bound = float(diff.mean()) if level is None else mean_lower_bound(diff, level)
    return bound >= -1e-12


def _upper(pred: np.ndarray) -> float:
    """A threshold at which every prompt goes to the cheapest model."""
    return float(np.ptp(pred)) * 2 + 1.0 if pred.size else 1.0


def calibrate_share(
    router: RouterModel, pred: np.ndarray, share: float, source: str
) -> Calibration:
    """Smallest threshold whose large share on these prompts is at most `share`."""
    if not 0.0 <= share <= 1.0:
        raise OutcomesError(f"--large-share must be between 0 and 1, got {share}")
    lo, hi = 0.0, _upper(pred)
    if large_share(router, pred, lo) <= share:
        hi = lo
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        if large_share(router, pred, mid) <= share:
            hi = mid
        else:
            lo = mid
    got = large_share(router, pred, hi)
    cal = Calibration(hi, "large-share", share, got, None, len(pred), source)
    cal.explanation = explain(router, cal)
    return cal


def calibrate_quality(
    router: RouterModel,
    pred: np.ndarray,
    target: float,
    source: str,
    truth: np.ndarray | None = None,
    level: float | None = DEFAULT_LEVEL,
) -> Calibration:
    """Largest threshold (cheapest routing) keeping quality >= target x the best single model's,
    judged on the lower bound at `level` (see the module docstring).

    `truth` (measured quality, 0..1) when known; otherwise the router's own predictions.
    """
    if not 0.0 < target <= 1.0:
        raise OutcomesError(f"--quality-target must be in (0, 1], got {target}")
    basis = pred if truth is None else truth
    best = float(basis.mean(axis=0).max())
    candidates = choice_thresholds(router, pred)
    good = [t for t in candidates if meets_quality(router, pred, basis, t, target, level)]
    if not good:
        raise OutcomesError(_unreachable(router, pred, basis, target, source, level, candidates))
    lo = max(good)
    kept = mean_quality(router, pred, basis, lo) / best if best > 0 else 1.0
    measured = "measured" if truth is not None else "predicted"
    cal = Calibration(
        lo,
        "quality-target",
        target,
        large_share(router, pred, lo),
        kept,
        len(pred),
        f"{source} ({measured} quality)",
    )
    cal.explanation = explain(router, cal) + _bound_note(router, pred, basis, lo, best, level)
    return cal


MAX_CANDIDATES = 2000


def choice_thresholds(router: RouterModel, pred: np.ndarray) -> list[float]:
    """0 and every threshold at which some prompt's choice moves to a cheaper model (where
    quality gain equals threshold x cost gap; ties go to the cheaper), thinned to quantiles
    when there are very many. Between two of them the routing does not change."""
    costs = router.norm_costs()
    points = [np.zeros(1)]
    for i in range(len(costs)):
        for j in range(len(costs)):
            if costs[i] > costs[j]:
                points.append((pred[:, i] - pred[:, j]) / (costs[i] - costs[j]))
    found = np.unique(np.concatenate(points))
    found = found[found >= 0.0]
    if len(found) > MAX_CANDIDATES:
        found = np.unique(np.r_[0.0, np.quantile(found, np.linspace(0, 1, MAX_CANDIDATES))])
    return [float(t) for t in found]


def reachable_target(
    router: RouterModel,
    pred: np.ndarray,
    basis: np.ndarray,
    level: float | None = DEFAULT_LEVEL,
    candidates: list[float] | None = None,
) -> float:
    """The highest quality target some threshold meets, on the same bound (bisection)."""
    candidates = choice_thresholds(router, pred) if candidates is None else candidates
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if any(meets_quality(router, pred, basis, t, mid, level) for t in candidates):
            lo = mid
        else:
            hi = mid
    return lo


def _unreachable(
    router: RouterModel,
    pred: np.ndarray,
    basis: np.ndarray,
    target: float,
    source: str,
    level: float | None,
    candidates: list[float],
) -> str:
    best = int(basis.mean(axis=0).argmax())
    kept = mean_quality(router, pred, basis, 0.0) / max(float(basis[:, best].mean()), 1e-12)
    bound = f" on the {level:.0%} lower bound" if level is not None else ""
    reachable = reachable_target(router, pred, basis, level, candidates)
    return (
        f"quality target {target:g} is not reachable on {source}: no threshold meets it; at "
        f"threshold 0 (always the best predicted model) quality is {kept:.1%} of "
        f"{router.models[best]}'s, and the highest target reachable{bound} is "
        f"{reachable:.3f} (N={len(basis)}). Lower the target, or send everything to "
        f"{router.models[best]}"
    )


def _bound_note(
    router: RouterModel,
    pred: np.ndarray,
    basis: np.ndarray,
    t: float,
    best: float,
    level: float | None,
) -> str:
    """`; lower bound 93.1% (95%, N=400)`: how sure the quality claim is."""
    if level is None or best <= 0:
        return ""
    picked = choose(pred, router.norm_costs(), t)
    quality = basis[np.arange(len(basis)), picked]
    column = basis[:, int(basis.mean(axis=0).argmax())]
    share = mean_lower_bound(quality - column, level) / best + 1.0
    return f"; lower bound {share * 100:.1f}% ({level:.0%}, N={len(basis)})"


def explain(router: RouterModel, cal: Calibration) -> str:
    """The threshold in words, e.g. "threshold 0.42: ~20% of traffic to gpt-4 (...)"."""
    large = ", ".join(router.large_models())
    text = (
        f"threshold {cal.threshold:.3g}: ~{(cal.large_share or 0) * 100:.0f}% of traffic to {large}"
    )
    if cal.quality_share is not None:
        text += f", quality ~{cal.quality_share * 100:.1f}% of the best single model's"
    if cal.prompts:
        text += f" (calibrated on {cal.prompts} prompts from {cal.source})"
    return text
