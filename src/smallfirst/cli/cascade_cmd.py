"""`smallfirst cascade ...`: run a cascade, score a rung, calibrate thresholds, train a scorer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from smallfirst.cli.common import console, err_console, fail, format_usd, run
from smallfirst.config import load_config
from smallfirst.errors import InvalidRequestError, SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.routing.cascade import Cascade
from smallfirst.routing.hops import CascadeResult
from smallfirst.target import CascadeTarget, Targets
from smallfirst.types import ChatRequest, GenerationParams, Message

cascade_app = typer.Typer(
    help="Answer small, check, escalate only when needed.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(cascade_app, name="cascade")


def _registry() -> Registry:
    try:
        return Registry(load_config())
    except SmallfirstError as exc:
        fail(exc.message)
        raise


def _cascade(name: str, registry: Registry) -> Cascade:
    """The cascade `name` means in the gateway (`cascade-<name>` or the bare name), by the one
    resolver; any other name is refused saying what it names instead."""
    targets = Targets(registry)
    target = targets.resolve(name)
    if not isinstance(target, CascadeTarget):
        known = ", ".join(targets.cascade_names()) or "none"
        raise InvalidRequestError(
            f"{name!r} is a {target.kind}, not a cascade. Configured cascades: {known}",
            param="cascade",
        )
    return target.cascade


def _request(prompt: str, system: str | None, max_tokens: int) -> ChatRequest:
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    return ChatRequest(messages, GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=0))


@cascade_app.command("ask")
def ask(
    prompt: str = typer.Argument(..., help="What to ask."),
    cascade: str = typer.Option(..., "--cascade", help="A cascade name from smallfirst.yaml."),
    system: str = typer.Option(None, "--system", "-s", help="A system message."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print the answer and hops as JSON."),
) -> None:
    """Run one request through a cascade; print the answer and every hop."""
    registry = _registry()

    async def go() -> CascadeResult:
        try:
            return await _cascade(cascade, registry).run(_request(prompt, system, max_tokens))
        finally:
            await registry.aclose()

    result = run(go())
    if as_json:
        hops = [hop.as_dict() for hop in result.hops]
        payload = {"answer": result.generation.text, "model": result.model, "hops": hops}
        console.print_json(json.dumps(payload))
        return
    console.print(result.generation.text, highlight=False, markup=False)
    print_hops(result)


def print_hops(result: CascadeResult) -> None:
    table = Table(title=f"{result.request_id} · cascade {result.cascade}")
    for column in ("#", "kind", "rung", "model", "outcome", "score", "$", "detail"):
        table.add_column(column)
    for hop in result.hops:
        table.add_row(
            str(hop.index),
            hop.kind,
            "" if hop.rung is None else str(hop.rung),
            hop.model or "",
            hop.outcome,
            "" if hop.score is None else f"{hop.score:.3f}",
            format_usd(hop.cost_usd),
            hop.detail,
        )
    err_console.print(table)
    err_console.print(
        f"[dim]{result.escalations} escalation(s) · total {format_usd(result.cost_usd)} · "
        f"escalations {format_usd(result.escalation_cost_usd)}[/]"
    )


def print_escalations(routes: list[dict]) -> None:
    """`smallfirst report`'s escalation table: only routes where escalation can happen."""
    shown = [r for r in routes if r["escalated"] or r["route"].startswith("cascade-")]
    if not shown:
        return
    table = Table(title="escalations per route")
    for column in ("route", "requests", "escalated", "rate", "escalation $", "route $"):
        table.add_column(column, justify="left" if column == "route" else "right")
    for row in shown:
        table.add_row(
            row["route"],
            str(row["requests"]),
            str(row["escalated"]),
            f"{row['escalation_rate']:.1%}",
            format_usd(row["escalation_cost_usd"]),
            format_usd(row["cost_usd"]),
        )
    console.print(table)


@cascade_app.command("score")
def score(
    labelled: Path = typer.Argument(..., help="CSV with columns `prompt` and `label`."),
    cascade: str = typer.Option(..., "--cascade", help="The cascade whose checks to score."),
    out: Path = typer.Option(Path("scored.csv"), "--out", "-o"),
    rung: int = typer.Option(0, "--rung", min=0, help="Which rung answers (0 = the first)."),
    system: str = typer.Option(None, "--system", "-s", help="The system message production uses."),
    max_tokens: int = typer.Option(32, "--max-tokens", min=1),
    limit: int = typer.Option(0, "--limit", min=0, help="Only the first N rows (0 = all)."),
) -> None:
    """Answer labelled prompts on one rung and write each check's score, for `calibrate`."""
    from smallfirst.routing.rung_scores import score_rung, write_scores

    items = _labelled_items(labelled, limit)
    registry = _registry()

    async def go():
        try:
            chosen = _cascade(cascade, registry)
            if rung >= len(chosen.rungs):
                fail(f"cascade {cascade!r} has {len(chosen.rungs)} rungs; --rung {rung} is past it")
            return await score_rung(
                chosen, items, lambda p: _request(p, system, max_tokens), rung=rung
            )
        finally:
            await registry.aclose()

    rows = run(go())
    write_scores(rows, out)
    accuracy = sum(r.correct for r in rows) / len(rows)
    err_console.print(f"{len(rows)} answers, accuracy {accuracy:.3f}, written to {out}")


def _labelled_items(path: Path, limit: int) -> list[tuple[str, str]]:
    if not path.is_file():
        fail(f"{path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not {"prompt", "label"} <= set(reader.fieldnames or []):
            fail(f"{path}: needs columns `prompt` and `label`, found {reader.fieldnames}")
        items = [(row["prompt"], row["label"]) for row in reader]
    if not items:
        fail(f"{path}: no rows")
    return items[:limit] if limit else items


@cascade_app.command("calibrate")
def calibrate(
    scored: Path = typer.Argument(..., help="CSV with `prompt`, `answer`, `correct` and scores."),
    target_accuracy: float = typer.Option(
        ..., "--target-accuracy", min=0.0, max=1.0, help="Accuracy the kept answers must reach."
    ),
    check: str = typer.Option(
        None, "--check", help="Score column to calibrate (e.g. logprob); default: --scorer."
    ),
    scorer: Path = typer.Option(None, "--scorer", help="Score with a trained scorer file."),
    escalated_correct: str = typer.Option(
        None,
        "--escalated-correct-column",
        help="Column saying if the next rung got the item right: target the whole cascade.",
    ),
) -> None:
    """Pick a check's threshold from labelled answers so accuracy reaches the target."""
    from smallfirst.routing.answer_scorer import load_scorer, parse_bool, read_labelled_answers
    from smallfirst.routing.thresholds import calibrate_threshold

    try:
        data = read_labelled_answers(scored)
        if scorer is not None:
            scores = load_scorer(str(scorer)).score(data.prompts, data.answers)
            check = "scorer"
        elif check in data.extra:
            scores = np.array([float(v) if v.strip() else 0.0 for v in data.extra[check]])
        else:
            fail(f"give --scorer or --check naming a score column of {scored}")
        later = None
        if escalated_correct is not None:
            if escalated_correct not in data.extra:
                fail(f"{scored} has no column {escalated_correct!r}")
            later = np.array(
                [parse_bool(v, escalated_correct) for v in data.extra[escalated_correct]]
            )
        result = calibrate_threshold(scores, data.correct, target_accuracy, later)
    except (SmallfirstError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
        raise
    _print_calibration(check, result)


def _print_calibration(check: str, result) -> None:
    table = Table(title=f"calibration of the {check} check on {result.n} labelled answers")
    columns = ("target", "threshold", "kept share", "kept accuracy", "cascade accuracy")
    for column in (*columns, "95% lower bound (must reach the target)"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{result.target_accuracy:.3f}",
        f"{result.threshold:.4f}",
        f"{result.kept_share:.3f} (N={result.kept_n})",
        "-" if result.kept_accuracy is None else f"{result.kept_accuracy:.3f}",
        "-" if result.overall_accuracy is None else f"{result.overall_accuracy:.3f}",
        "-" if result.lower_bound is None else f"{result.lower_bound:.3f}",
    )
    console.print(table)
    if not result.achievable:
        err_console.print("[yellow]no threshold reaches the target: every answer escalates[/]")
    console.print(f"checks:\n  - kind: {check}\n    threshold: {result.threshold:.4f}")


@cascade_app.command("train-scorer")
def train_scorer_cmd(
    outcomes: Path = typer.Argument(..., help="CSV with `prompt`, `answer`, `correct` columns."),
    out: Path = typer.Option(Path("scorer.npz"), "--out", "-o"),
) -> None:
    """Learn P(correct) for (prompt, answer) on MiniLM embeddings; report held-out AUC."""
    from smallfirst.routing.answer_scorer import read_labelled_answers, train_scorer

    try:
        scorer, report = train_scorer(read_labelled_answers(outcomes))
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    scorer.save(out)
    auc = (
        "n/a (too few of one class)" if report.heldout_auc is None else f"{report.heldout_auc:.3f}"
    )
    console.print(
        f"trained on {report.n} answers ({report.base_rate:.1%} correct); "
        f"held-out AUC (5-fold) {auc}; saved to {out}"
    )
