"""`smallfirst report`: what the gateway spent, what it saved, where traffic went."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.table import Table

from smallfirst.cli.cascade_cmd import print_escalations
from smallfirst.cli.common import console, fail, format_usd
from smallfirst.cli.learn_tasks_cmd import print_tasks
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError
from smallfirst.learning.task_report import budget_today, task_summaries
from smallfirst.ledger.escalations import escalation_summary
from smallfirst.ledger.report import parse_since, summarize
from smallfirst.ledger.store import LedgerStore


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    since: str = typer.Option(
        None, "--since", help="Only requests since: 30m, 24h, 7d, or an ISO date (UTC)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ledger_url: str = typer.Option(
        None, "--ledger", help="Ledger database URL (default: server.ledger_url or the state dir)."
    ),
) -> None:
    """Spend, savings against the baseline model and share of traffic per tier."""
    try:
        start = parse_since(since) if since else None
        config = load_config()
        store = LedgerStore(ledger_url or config.server.ledger_url)
        try:
            summary = summarize(store, start)
            summary["escalations"] = escalation_summary(store, start)
            tasks = task_summaries(store.engine, config.learn, start)
            summary["tasks"] = [task.as_json() for task in tasks]
            budget = budget_today(store.engine, config.learn) if config.learn else None
            summary["learning_budget"] = budget.as_json() if budget else None
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
        return
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print(summary)
    if tasks:
        print_tasks(tasks, config.learn, budget)


def _print(summary: dict) -> None:
    totals = summary["totals"]
    when = "all time"
    if summary["since"] is not None:
        when = "since " + datetime.fromtimestamp(summary["since"], UTC).isoformat(
            timespec="seconds"
        )
    table = Table(title=f"smallfirst gateway ({when})")
    columns = ("tier", "model", "requests", "share", "errors", "tokens in/out", "cached in")
    for column in (*columns, "spend"):
        table.add_column(column, justify="left" if column in ("tier", "model") else "right")
    for row in summary["models"]:
        share = row["share"]
        table.add_row(
            row["tier"] or "-",
            row["model"] or "(failed before routing)",
            str(row["requests"]),
            "-" if share is None else f"{share:.1%}",
            str(row["errors"]),
            f"{row['input_tokens']:,}/{row['output_tokens']:,}",
            f"{row['cached_input_tokens']:,}",
            format_usd(row["cost_usd"]),
        )
    console.print(table)
    saved = totals["savings_share"]
    console.print(
        f"requests {totals['requests']:,} · errors {totals['errors']:,} · "
        f"cached input tokens {totals['cached_input_tokens']:,} · "
        f"spend {format_usd(totals['cost_usd'])} · "
        f"baseline {format_usd(totals['baseline_cost_usd'])}"
        f" · saved {format_usd(totals['savings_usd'])}"
        + ("" if saved is None else f" ({saved:.1%})"),
        highlight=False,
    )
    tiers = ", ".join(
        f"{t['tier']} {t['share']:.1%}" for t in summary["tiers"] if t["tier"] is not None
    )
    if tiers:
        console.print(f"traffic per tier: {tiers}", highlight=False)
    for row in summary["cache"]:
        console.print(
            f"response cache on {row['route']}: {row['hits']:,} hits of {row['requests']:,} "
            f"({row['hit_rate']:.1%}), saved {format_usd(row['saved_usd'])}",
            highlight=False,
        )
    print_escalations(summary["escalations"])
