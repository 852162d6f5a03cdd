"""`smallfirst ledger prune|export`: apply retention now; raw rows out for analysis."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from smallfirst.cli.common import err_console, fail
from smallfirst.config import RetentionConfig, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.ledger.export import FORMATS, export_jsonl, export_parquet
from smallfirst.ledger.report import parse_since
from smallfirst.ledger.retention import prune
from smallfirst.ledger.store import LedgerStore

ledger_app = typer.Typer(help="The ledger's raw rows: prune old ones, export them.")
LEDGER_OPTION = typer.Option(
    None, "--ledger", help="Ledger database URL (default: server.ledger_url or the state dir)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")


@ledger_app.command("prune")
def prune_cmd(
    prompts_days: float = typer.Option(
        None, "--prompts-days", help="Blank prompt/answer text older than this (default: config)."
    ),
    rows_days: float = typer.Option(
        None, "--rows-days", help="Delete raw rows older than this (default: config)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was pruned as JSON."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Apply `ledger.retention` now. Spend, budgets and savings stay (they are in the rollups)."""
    try:
        config = load_config()
        policy = config.ledger.retention
        changes = {"prompts_days": prompts_days, "rows_days": rows_days}
        policy = RetentionConfig(
            **{**policy.model_dump(), **{k: v for k, v in changes.items() if v is not None}}
        )
        store = LedgerStore(ledger_url or config.server.ledger_url)
        try:
            done = prune(store, policy)
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
        return
    except ValueError as exc:  # a bad number of days (pydantic)
        fail(str(exc))
        return
    if as_json:
        typer.echo(json.dumps({"prompts_blanked": done.prompts, "rows_deleted": done.rows}))
        return
    typer.echo(f"blanked the text of {done.prompts:,} rows, deleted {done.rows:,} rows")


@ledger_app.command("export")
def export_cmd(
    since: str = typer.Option(
        None, "--since", help="Only rows since: 30m, 24h, 7d, or an ISO date (UTC)."
    ),
    until: str = typer.Option(None, "--until", help="Only rows before: same spellings."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or parquet."),
    output: Path = typer.Option(
        None, "--output", "-o", help="File to write (jsonl default: stdout)."
    ),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Raw rows (requests and hops) in id order, streamed in bounded memory."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        return
    if fmt == "parquet" and output is None:
        fail("--format parquet needs --output FILE")
        return
    try:
        window = {
            "since": parse_since(since) if since else None,
            "until": parse_since(until) if until else None,
        }
        store = LedgerStore(ledger_url or load_config().server.ledger_url)
        try:
            if fmt == "parquet":
                count = export_parquet(store, output, **window)
            elif output is None:
                count = export_jsonl(store, sys.stdout, **window)
            else:
                with output.open("w", encoding="utf-8") as out:
                    count = export_jsonl(store, out, **window)
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
        return
    except OSError as exc:  # the output file cannot be written
        fail(f"cannot write {output}: {exc.strerror or exc}")
        return
    err_console.print(f"[dim]exported {count:,} rows[/]", highlight=False)
