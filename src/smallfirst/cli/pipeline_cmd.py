"""`smallfirst pipeline run`: a document through a pipeline, with per-step model, $ and latency."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from smallfirst.cli.common import console, fail, format_usd, run
from smallfirst.config import find_config_path, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.pipeline import Pipeline, PipelineResult

pipeline_app = typer.Typer(
    help="Multi-step pipelines: small models for the steps, escalation for the hard part."
)


def register(app: typer.Typer) -> None:
    app.add_typer(pipeline_app, name="pipeline")


def resolve_pipeline(name: str) -> Pipeline:
    """A pipeline file path, or a name from the config's `pipelines:` section."""
    path = Path(name)
    if not path.is_file():
        configured = load_config().pipelines
        if name not in configured:
            known = ", ".join(configured) or "none configured"
            raise SmallfirstError(f"no pipeline file or configured pipeline {name!r} ({known})")
        config_file = find_config_path()
        base = config_file.parent if config_file is not None else Path.cwd()
        path = base / configured[name]
    return Pipeline.from_yaml(path)


@pipeline_app.command("run")
def run_pipeline(
    name: str = typer.Argument(..., help="Pipeline YAML file or a configured pipeline name."),
    input: Path = typer.Option(..., "--input", "-i", help="The document (text file; - for stdin)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Run every step (independent ones concurrently) and show what each cost."""
    try:
        pipeline = resolve_pipeline(name)
        text = sys.stdin.read() if str(input) == "-" else input.read_text(encoding="utf-8")
        registry = Registry(load_config())
    except (SmallfirstError, OSError) as exc:
        fail(getattr(exc, "message", str(exc)))
    result = run(_run(pipeline, text, registry))
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        show(result)


async def _run(pipeline: Pipeline, text: str, registry: Registry) -> PipelineResult:
    try:
        return await pipeline.run(text, registry=registry)
    finally:
        await registry.aclose()


def show(result: PipelineResult) -> None:
    table = Table(title=f"pipeline {result.pipeline}")
    for column in ("step", "status", "model", "tokens in/out", "$", "ms", "output / reason"):
        table.add_column(column)
    for name, step in result.steps.items():
        shown = step.text if step.status == "ok" else (step.reason or "")
        table.add_row(
            name,
            step.status,
            step.model or "-",
            f"{step.usage.input_tokens}/{step.usage.output_tokens}",
            format_usd(step.cost_usd),
            f"{step.latency_s * 1000:.0f}",
            shown[:160],
        )
    console.print(table)
    console.print(
        f"total {format_usd(result.cost_usd)} · {result.latency_s * 1000:.0f} ms · "
        f"request id {result.request_id}",
        highlight=False,
    )
