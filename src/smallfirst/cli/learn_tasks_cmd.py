"""`smallfirst tasks`: the tasks `auto` has seen, with their volume, spend and policy."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from smallfirst.cli.common import console, fail, format_usd
from smallfirst.config import LearnConfig, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.learning.task_report import (
    BudgetToday,
    TaskSummary,
    budget_today,
    policy_text,
    task_summaries,
)
from smallfirst.learning.tier_series import sparkline
from smallfirst.ledger.report import parse_since
from smallfirst.ledger.store import LedgerStore


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)


def tasks(
    since: str = typer.Option(
        None, "--since", help="Only requests since: 30m, 24h, 7d, or an ISO date (UTC)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the tasks as JSON."),
    ledger_url: str = typer.Option(
        None, "--ledger", help="Ledger database URL (default: server.ledger_url or the state dir)."
    ),
) -> None:
    """Tasks seen in the ledger (learn:): requests, spend, share per tier, evidence, policy."""
    try:
        start = parse_since(since) if since else None
        config = load_config()
        store = LedgerStore(ledger_url or config.server.ledger_url)
        try:
            found = task_summaries(store.engine, config.learn, start)
            budget = budget_today(store.engine, config.learn) if config.learn else None
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
        return
    if as_json:
        shown = {
            "since": start,
            "tasks": [s.as_json() for s in found],
            "learning_budget": budget.as_json() if budget else None,
        }
        typer.echo(json.dumps(shown, indent=2))
        return
    if not found:
        console.print(
            "no tasks in the ledger: requests are named by task when the gateway's config "
            "has a `learn:` section"
        )
        return
    print_tasks(found, config.learn, budget)


def print_tasks(
    found: list[TaskSummary], config: LearnConfig | None, budget: BudgetToday | None = None
) -> None:
    """The per-task table (also a section of `smallfirst report`); `below large` is the
    share served below the large tier per time bucket (`tier_series.sparkline`)."""
    table = Table(title="tasks")
    columns = ("task", "requests", "errors", "spend", "tiers", "below large", "evidence")
    for column in (*columns, "policy", "saved"):
        left = column in ("task", "tiers", "below large", "policy")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    for summary in found:
        table.add_row(
            summary.task,
            f"{summary.requests:,}",
            f"{summary.errors:,}",
            format_usd(summary.cost_usd),
            " · ".join(f"{tier} {share:.0%}" for tier, share in summary.tiers.items()) or "-",
            sparkline(summary.series) if summary.series is not None else "-",
            f"{summary.evidence:,}",
            policy_text(summary, config),
            _saved(summary),
        )
    console.print(table)
    if budget is not None:
        console.print(budget.text())


def _saved(summary: TaskSummary) -> str:
    text = _signed_usd(summary.saved_usd)
    if summary.saved_per_month_usd is not None:
        text += f" ({_signed_usd(summary.saved_per_month_usd)}/month)"
    return text


def _signed_usd(value: float) -> str:
    return "-" + format_usd(-value) if value < 0 else format_usd(value)
