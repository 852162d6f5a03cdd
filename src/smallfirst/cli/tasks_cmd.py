"""`smallfirst run TASK --input "..."`: run a task spec (a YAML file or a configured name)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from smallfirst.cli.common import console, err_console, fail, run
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.tasks import AnswerResult, ClassifyResult, ExtractResult, Task, TaskResult
from smallfirst.tasks.catalog import TaskCatalog


def register(app: typer.Typer) -> None:
    app.command("run")(run_task)


def run_task(
    task: str = typer.Argument(..., help="A task spec YAML file, or a task named in `tasks:`."),
    input: str = typer.Option(
        ..., "--input", "-i", help="The text to run the task on. Use - to read standard input."
    ),
    model: str = typer.Option(
        None, "--model", "-m", help="A configured model or router name (default: the task's)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Run a classify / extract / summarize / answer task on one input."""
    if input == "-":
        input = sys.stdin.read()
    try:
        config = load_config()
        loaded = _load(task, TaskCatalog(config))
        registry = Registry(config)
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    result = run(_run(loaded, input, model, registry))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _show(result)


def _load(task: str, catalog: TaskCatalog) -> Task:
    path = Path(task)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return Task.from_yaml(path)
    return catalog.get(task)


async def _run(task: Task, text: str, model: str | None, registry: Registry) -> TaskResult:
    try:
        return await task.run(text, model=model, registry=registry)
    finally:
        await registry.aclose()


def _show(result: TaskResult) -> None:
    if isinstance(result, ClassifyResult):
        confidence = "" if result.confidence is None else f"  (confidence {result.confidence:.2f})"
        console.print(f"{result.label}{confidence}", highlight=False, markup=False)
    elif isinstance(result, ExtractResult):
        typer.echo(json.dumps(result.to_dict()["data"], indent=2, ensure_ascii=False))
    else:
        typer.echo(result.text)  # type: ignore[attr-defined]
    if isinstance(result, AnswerResult):
        for chunk in result.citations:
            err_console.print(f"  source: {chunk.source or '(no source)'}", highlight=False)
    repaired = " after one repair" if result.attempts > 1 else ""
    err_console.print(
        f"[dim]{result.model}{repaired}: {result.usage.input_tokens} in / "
        f"{result.usage.output_tokens} out tokens, {result.latency_s:.2f}s[/]"
    )
