"""`smallfirst keys create|list|revoke`: API keys with budgets and rate limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.table import Table

from smallfirst.cli.common import console, err_console, fail, format_usd
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError
from smallfirst.ledger.keys import KeyStore
from smallfirst.ledger.store import LedgerStore

keys_app = typer.Typer(help="API keys for the gateway: budgets ($) and rate limits.")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _store(ledger_url: str | None) -> LedgerStore:
    try:
        return LedgerStore(ledger_url or load_config().server.ledger_url)
    except SmallfirstError as exc:
        fail(exc.message)
        raise


LEDGER_OPTION = typer.Option(None, "--ledger", help="Ledger database URL (default: config).")


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who the key is for, e.g. team-a."),
    budget: float = typer.Option(None, "--budget", help="Budget in US dollars (all time)."),
    rpm: int = typer.Option(None, "--rpm", help="Requests per minute."),
    tpm: int = typer.Option(None, "--tpm", help="Tokens per minute (prompt + completion)."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Create a key; it is printed once and only its sha256 is stored."""
    store = _store(ledger_url)
    try:
        key, secret = KeyStore(store).create(name, budget, rpm, tpm)
    except SmallfirstError as exc:
        fail(exc.message)
        return
    finally:
        store.close()
    typer.echo(secret)
    err_console.print(
        f"[dim]key {key.id} for {name!r} · budget "
        f"{'none' if budget is None else format_usd(budget)} · rpm {rpm or '-'} · "
        f"tpm {tpm or '-'} · shown once: store it now[/]",
        highlight=False,
    )


@keys_app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Keys with their limits, spend so far and state."""
    store = _store(ledger_url)
    try:
        keys = KeyStore(store).all()
        spent = store.spend_by_key()
    finally:
        store.close()
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "budget_usd": k.budget_usd,
            "spent_usd": spent.get(k.id, 0.0),
            "rpm": k.rpm,
            "tpm": k.tpm,
            "created": _iso(k.created_at),
            "revoked": _iso(k.revoked_at) if k.revoked_at else None,
        }
        for k in keys
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="API keys")
    for column in ("id", "name", "budget", "spent", "rpm", "tpm", "created", "state"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            "-" if k.budget_usd is None else format_usd(k.budget_usd),
            format_usd(spent.get(k.id, 0.0)),
            str(k.rpm or "-"),
            str(k.tpm or "-"),
            _iso(k.created_at),
            "revoked" if k.revoked_at else "active",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's id, or a name (revokes all its keys)."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Revoke a key; a running gateway refuses it within a few seconds."""
    store = _store(ledger_url)
    try:
        revoked = KeyStore(store).revoke(key)
    except SmallfirstError as exc:
        fail(exc.message)
        return
    finally:
        store.close()
    for item in revoked:
        typer.echo(f"revoked {item.id} ({item.name})")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
