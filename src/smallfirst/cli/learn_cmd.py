"""`smallfirst learn`: one learning pass over the ledger's evidence; `learn history TASK` and
`learn rollback TASK VERSION` for a task's policy versions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.table import Table

from smallfirst.cli.common import console, fail
from smallfirst.config import Config, LearnConfig, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.learning.learner import Outcome, learn, rollback
from smallfirst.learning.records import Estimate, Policy
from smallfirst.learning.store import LearningStore
from smallfirst.ledger.store import LedgerStore
from smallfirst.models.registry import Registry

learn_app = typer.Typer(
    help="Learn per task, from the ledger's evidence, the cheapest policy proven to work.",
    invoke_without_command=True,
)
LEDGER_OPTION = typer.Option(
    None, "--ledger", help="Ledger database URL (default: server.ledger_url or the state dir)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def register(app: typer.Typer) -> None:
    app.add_typer(learn_app, name="learn")


@contextmanager
def _opened(ledger_url: str | None) -> Iterator[tuple[Config, LearningStore]]:
    """The config and the learning tables of its ledger; our errors become one clean line."""
    try:
        config = load_config()
        ledger = LedgerStore(ledger_url or config.server.ledger_url)
    except SmallfirstError as exc:
        fail(exc.message)
    try:
        yield config, LearningStore(ledger.engine)
    except SmallfirstError as exc:
        fail(exc.message)
    finally:
        ledger.close()


@learn_app.callback()
def learn_cmd(
    ctx: typer.Context,
    task: list[str] = typer.Option(None, "--task", "-t", help="Only this task (repeatable)."),
    as_json: bool = JSON_OPTION,
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """One pass: per task, promote a cheaper policy proven on held-out evidence, demote one
    whose audits dropped, or say how much more evidence a task needs."""
    if ctx.invoked_subcommand is not None:
        return
    with _opened(ledger_url) as (config, store):
        outcomes = learn(Registry(config), store, config.learn or LearnConfig(), tasks=task or None)
    if as_json:
        typer.echo(json.dumps([_outcome_json(o) for o in outcomes], indent=2))
        return
    if not outcomes:
        console.print("no evidence yet: serve traffic on `auto` with `learn:` configured")
        return
    table = Table(
        "task", "outcome", "policy", "estimate \\[lower, upper]", "N", "target", "below large"
    )
    for o in outcomes:
        table.add_row(
            o.task,
            o.action,
            _policy_name(o.policy),
            _interval(o.estimate),
            str(o.estimate.n if o.estimate else o.evidence_n),
            f"{o.target:g}",
            f"{o.share_below_large:.0%}",
        )
    console.print(table)
    for o in outcomes:
        console.print(f"- {o.message}", highlight=False, soft_wrap=True)


@learn_app.command("history")
def history_cmd(
    task: str = typer.Argument(..., help="The task's name (see `smallfirst tasks`)."),
    as_json: bool = JSON_OPTION,
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Every policy version of a task, oldest first, with why it was made."""
    with _opened(ledger_url) as (_config, store):
        versions = store.history(task)
    if as_json:
        typer.echo(json.dumps([p.as_json() for p in versions], indent=2))
        return
    if not versions:
        fail(f"task {task!r} has no policy yet (it is served on the large model)")
    table = Table("version", "created (UTC)", "policy", "estimate \\[lower, upper]", "N", "reason")
    for p in versions:
        table.add_row(
            str(p.version),
            _when(p.created_at),
            _policy_name(p),
            _interval(p.estimate),
            str(p.estimate.n if p.estimate else p.evidence_n),
            p.reason,
        )
    console.print(table)


@learn_app.command("rollback")
def rollback_cmd(
    task: str = typer.Argument(..., help="The task's name."),
    version: int = typer.Argument(..., help="The version to serve again."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Serve an earlier version again, as a new version (every replica picks it up)."""
    with _opened(ledger_url) as (_config, store):
        saved = rollback(store, task, version)
    console.print(
        f"{task} v{saved.version}: a copy of v{version} ({_policy_name(saved)})", highlight=False
    )


def _policy_name(policy: Policy | None) -> str:
    if policy is None:
        return "v0 large (cold start)"
    ladder = " -> ".join(["student", *policy.rungs] if policy.serve == "student" else policy.rungs)
    return f"v{policy.version} {ladder}"


def _interval(estimate: Estimate | None) -> str:
    if estimate is None:
        return "-"
    return f"{estimate.agreement:.3f} [{estimate.lower:.3f}, {estimate.upper:.3f}]"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _outcome_json(outcome: Outcome) -> dict[str, object]:
    estimate = outcome.estimate
    return {
        "task": outcome.task,
        "outcome": outcome.action,
        "message": outcome.message,
        "policy": outcome.policy.as_json() if outcome.policy else None,
        "estimate": None
        if estimate is None
        else {
            "agreement": estimate.agreement,
            "lower": estimate.lower,
            "upper": estimate.upper,
            "n": estimate.n,
        },
        "target": outcome.target,
        "evidence_n": outcome.evidence_n,
        "needed": outcome.needed,
        "share_below_large": outcome.share_below_large,
    }
