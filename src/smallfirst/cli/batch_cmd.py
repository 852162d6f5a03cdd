"""`smallfirst batch`: a file of items through a model, task or pipeline, resumable."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from smallfirst.batch import BatchOptions, BatchSummary, WorkSpec, run_batch
from smallfirst.batch.items import count_rows
from smallfirst.batch.journal import InputChangedError
from smallfirst.batch.runner import ProgressFn
from smallfirst.cli.common import console, err_console, fail, format_usd
from smallfirst.config import CONFIG_ENV
from smallfirst.errors import SmallfirstError
from smallfirst.ledger import Ledger

INPUT_CHANGED_EXIT = 5
"""A resume refused because INPUT is not the file the journal was started with."""


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def batch(
    input: Path = typer.Argument(..., help="JSONL, CSV, Parquet or an OpenAI Batch JSONL file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.jsonl, .csv or .parquet)."),
    task: Path = typer.Option(None, "--task", "-t", help="A task spec (YAML) to run per item."),
    pipeline: Path = typer.Option(None, "--pipeline", "-p", help="A pipeline spec (YAML)."),
    model: str = typer.Option(None, "--model", "-m", help="Model or router (default: default)."),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, max=1024),
    max_usd: float = typer.Option(None, "--max-usd", min=0, help="Stop cleanly at this spend."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    max_input_chars: int = typer.Option(100_000, "--max-input-chars", min=1),
    rejects: Path = typer.Option(None, "--rejects", help="Default: OUT stem + .rejects.jsonl"),
    engine: str = typer.Option("local", "--engine", help="local (asyncio) or ray"),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Ray: model replicas (actors)."),
    restart: bool = typer.Option(False, "--restart", help="Ignore earlier progress for OUT."),
    ledger_url: str = typer.Option(
        None,
        "--ledger",
        help="Ledger database URL for the items' rows (default: server.ledger_url or the "
        "state dir).",
    ),
    allow_changed_input: bool = typer.Option(
        False,
        "--allow-changed-input",
        help="Resume although INPUT changed: keep finished lines (by content), process the rest.",
    ),
) -> None:
    """Process every item once; rerun the same command after a crash to finish the rest."""
    try:
        spec = WorkSpec(
            model=model,
            task=str(task) if task else None,
            pipeline=str(pipeline) if pipeline else None,
            max_tokens=max_tokens,
            config=os.environ.get(CONFIG_ENV),
        )
        options = BatchOptions(
            input,
            out,
            rejects,
            concurrency,
            max_usd,
            max_input_chars,
            restart,
            allow_changed_input,
        )
        total = count_rows(input) if input.is_file() else 0
        with _progress() as bar:
            job = bar.add_task("items", total=total, cost="$0", rate="-")
            started = time.perf_counter()

            def show(summary: BatchSummary) -> None:
                rate = (summary.done + summary.rejected) / max(time.perf_counter() - started, 1e-9)
                bar.update(
                    job,
                    completed=summary.resumed + summary.done + summary.rejected,
                    cost=format_usd(summary.cost_usd),
                    rate=f"{rate:.1f}",
                )

            if engine not in ("local", "ray"):
                fail(f"unknown engine {engine!r}: use local or ray")
            summary = _run(spec, options, engine, replicas, ledger_url, show)
    except InputChangedError as exc:
        fail(exc.message, INPUT_CHANGED_EXIT)
    except SmallfirstError as exc:
        fail(exc.message)
    _report(summary, options)


def _run(
    spec: WorkSpec,
    options: BatchOptions,
    engine: str,
    replicas: int,
    ledger_url: str | None,
    show: ProgressFn,
) -> BatchSummary:
    """The job on `engine`, each item a request row (and its hops) in the ledger."""
    registry = spec.registry()
    ledger = Ledger(ledger_url or registry.config.server.ledger_url)
    try:
        if engine == "ray":
            from smallfirst.batch.ray_engine import run_batch_ray

            return run_batch_ray(spec, options, replicas=replicas, progress=show, ledger=ledger)
        processor = spec.build(registry, ledger)
        return asyncio.run(run_batch(processor, options, progress=show))
    finally:
        ledger.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} items/s"),
        TextColumn("[cyan]{task.fields[cost]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


def _report(summary: BatchSummary, options: BatchOptions) -> None:
    console.print(
        f"{summary.done} done, {summary.rejected} rejected (bad input, not retried), "
        f"{summary.failed} failed ({summary.resumed} finished in earlier runs) in "
        f"{summary.elapsed_s:.1f}s · "
        f"{summary.input_tokens} in / {summary.output_tokens} out tokens this run · "
        f"total {format_usd(summary.cost_usd)}",
        highlight=False,
    )
    if summary.retired:
        console.print(
            f"{summary.retired} earlier results are no longer in the input: left out of the "
            "output, their cost still counted",
            highlight=False,
        )
    console.print(f"output: {options.out}", highlight=False)
    if summary.rejected:
        console.print(f"rejects: {options.rejects_path}", highlight=False)
    for line in summary.failures[:5]:
        err_console.print(f"[yellow]failed[/] {line}", highlight=False)
    if summary.failed:
        err_console.print("[yellow]rerun the same command to retry the failed items[/]")
    if summary.stopped:
        err_console.print(f"[yellow]stopped: {summary.stopped}; rerun with a higher --max-usd[/]")
        raise typer.Exit(3)
    if summary.failed:
        raise typer.Exit(4)
