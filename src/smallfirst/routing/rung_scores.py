"""Label a rung's answers and every check's score on them: the data thresholds are set from.

`smallfirst cascade score` writes these rows as CSV; `smallfirst cascade calibrate` reads them
back and picks each check's threshold for a target accuracy.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smallfirst.errors import SmallfirstError
from smallfirst.routing.cascade import Cascade
from smallfirst.routing.checks import CheckContext, normalize_answer
from smallfirst.routing.fallback import AnyRequest, Deadline
from smallfirst.routing.hops import HopLog


@dataclass(slots=True)
class RungScore:
    prompt: str
    gold: str
    answer: str
    correct: bool
    scores: dict[str, float | None] = field(default_factory=dict)
    cost_usd: float = 0.0
    error: str | None = None


async def score_item(
    cascade: Cascade, request: AnyRequest, prompt: str, gold: str, rung: int = 0
) -> RungScore:
    """One item on one rung: the answer, whether it matches the gold label, each check's score."""
    log = HopLog()
    deadline = Deadline.after(cascade.config.deadline_s or cascade.caller.config.deadline_s)
    try:
        generation = await cascade.caller.generate(
            request, [cascade.rungs[rung]], log, deadline, rung
        )
    except SmallfirstError as exc:
        return RungScore(prompt, gold, "", False, error=exc.message)
    ctx = CheckContext(request, generation, generation.model, cascade.caller, log, deadline, rung)
    row = RungScore(
        prompt,
        gold,
        generation.text,
        normalize_answer(generation.text) == normalize_answer(gold),
    )
    row.cost_usd = sum(h.cost_usd for h in log.hops)
    for check in cascade.checks:
        outcome = await check.evaluate(ctx)
        row.scores[check.name] = outcome.score
        row.cost_usd += outcome.cost_usd
    return row


async def score_rung(
    cascade: Cascade,
    items: list[tuple[str, str]],
    make_request: Callable[[str], AnyRequest],
    rung: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[RungScore]:
    """(prompt, gold) pairs, one after another (local models serve one request at a time)."""
    rows = []
    for done, (prompt, gold) in enumerate(items, start=1):
        rows.append(await score_item(cascade, make_request(prompt), prompt, gold, rung))
        if progress is not None:
            progress(done)
    return rows


def write_scores(rows: list[RungScore], path: str | Path) -> Path:
    path = Path(path)
    checks = sorted({name for row in rows for name in row.scores})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "gold", "answer", "correct", *checks, "cost_usd", "error"])
        for row in rows:
            scores = ["" if row.scores.get(c) is None else f"{row.scores[c]:.6f}" for c in checks]
            writer.writerow(
                [
                    row.prompt,
                    row.gold,
                    row.answer,
                    int(row.correct),
                    *scores,
                    f"{row.cost_usd:.8f}",
                    row.error or "",
                ]
            )
    return path
