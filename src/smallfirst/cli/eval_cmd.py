"""`smallfirst eval` (find the smallest model that meets the bar) and `smallfirst cost`
(what a workload would cost on each configured model)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smallfirst.cli.common import console, err_console, fail, format_usd, run
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError
from smallfirst.evaluate.adapters import build_candidates, load_task
from smallfirst.evaluate.data import load_examples
from smallfirst.evaluate.evaluation import EvalReport, EvalSettings, evaluate
from smallfirst.evaluate.progress import LineProgress
from smallfirst.evaluate.projection import Projection, Workload, project
from smallfirst.evaluate.recommend import describe_cost, describe_speed
from smallfirst.evaluate.report import write_html
from smallfirst.evaluate.scoring import PRIMARY_METRIC
from smallfirst.evaluate.stats import Estimate
from smallfirst.models.registry import Registry


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("cost")(cost_command)


def _split(names: str | None) -> list[str] | None:
    if not names:
        return None
    return [n.strip() for n in names.split(",") if n.strip()] or None


def eval_command(
    task: Path = typer.Argument(..., help="The task spec (YAML) the candidates run."),
    data: Path = typer.Option(..., "--data", "-d", help="Labelled JSONL: {input, expected}."),
    models: str = typer.Option(
        None,
        "--models",
        "-m",
        help="Comma-separated models, routers (auto, router-...) or cascades (cascade-NAME); "
        "default: all models.",
    ),
    threshold: float = typer.Option(
        0.9, "--threshold", "-t", help="The bar the quality's lower bound must meet."
    ),
    metric: str = typer.Option(
        None, "--metric", help="Metric the bar applies to (default: the task kind's primary)."
    ),
    limit: int = typer.Option(None, "--limit", "-n", min=1, help="Use only the first N examples."),
    sample: int = typer.Option(
        None, "--sample", min=1, help="Use N examples drawn at random (see --seed)."
    ),
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, help="Requests in flight per candidate (1: unloaded latency)."
    ),
    judge: str = typer.Option(
        None, "--judge", help="A configured model that grades summaries (metric `judge`)."
    ),
    resamples: int = typer.Option(
        1000, "--resamples", min=100, help="Bootstrap resamples for the 95% intervals."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample and the bootstrap resamples."),
    json_out: Path = typer.Option(
        None, "--json", help="Write the full results as JSON (- for stdout)."
    ),
    html_out: Path = typer.Option(
        None, "--html", help="Write a self-contained HTML report with plots."
    ),
) -> None:
    """Run candidates on a labelled set; recommend the cheapest whose quality meets the bar.

    A candidate that defers (a student) is shown with its coverage and the quality of what it
    answered, and as "STUDENT, then X" with each candidate X that answers the rest.
    Exit status 2 when no candidate's 95% lower bound reaches the threshold.
    """
    _check_outputs(json_out, html_out)
    picked = _Subset(limit, sample)
    report = run(
        _eval(task, data, models, threshold, metric, picked, concurrency, judge, resamples, seed)
    )
    # with --json - the JSON alone goes to stdout, so CI can pipe it
    _print_report(report, err_console if str(json_out) == "-" else console)
    if json_out is not None:
        _write_json(report.to_json(), json_out)
    if html_out is not None:
        err_console.print(f"HTML report: {write_html(report, html_out)}")
    raise typer.Exit(report.exit_code)


async def _eval(
    task_path: Path,
    data: Path,
    models: str | None,
    threshold: float,
    metric: str | None,
    picked: _Subset,
    concurrency: int,
    judge: str | None,
    resamples: int,
    seed: int,
) -> EvalReport:
    registry = Registry(load_config())
    try:
        task = load_task(task_path)
        examples = load_examples(data, picked.limit, picked.sample, seed)
        names = _split(models) or registry.names()
        candidates = build_candidates(task, names, registry)
        if judge is not None:
            registry.get(judge)
        settings = EvalSettings(
            metric=metric or PRIMARY_METRIC[task.spec.kind],
            threshold=threshold,
            concurrency=concurrency,
            resamples=resamples,
            seed=seed,
            judge=judge,
        )
        with _progress() as progress:
            return await evaluate(
                task.name, task.spec.kind, candidates, examples, settings, registry, progress
            )
    finally:
        await registry.aclose()


@dataclass(frozen=True, slots=True)
class _Subset:
    """Which examples run: the first `limit`, or `sample` drawn at random (with --seed)."""

    limit: int | None
    sample: int | None


def _progress() -> Progress | LineProgress:
    """A live bar on a terminal; elsewhere (CI, a pipe, a log file) a line every 10 s."""
    if not err_console.is_terminal:
        return LineProgress(err_console)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


def _print_report(report: EvalReport, out: Console) -> None:
    winner = report.recommendation.winner
    table = Table(title=f"{report.task}: {report.kind}, {report.n} examples")
    table.add_column("candidate", no_wrap=True)
    metric_names = list(report.results[0].metrics) if report.results else []
    for name in metric_names:
        marker = " (bar)" if name == report.settings.metric else ""
        table.add_column(name + marker, justify="right")
    for column in ("coverage", "p50 s", "p95 s", "tokens in/out", "$ / 1k req", "errors"):
        table.add_column(column, justify="right")
    for result in report.results:
        tokens_in, tokens_out = result.mean_tokens()
        table.add_row(
            ("✓ " if result.name == winner else "  ") + result.name,
            *(_interval(result.metrics[m]) for m in metric_names),
            _interval(result.coverage) if result.coverage else "all",
            f"{result.latency_p50_s:.3f}",
            f"{result.latency_p95_s:.3f}",
            f"{tokens_in:.0f} / {tokens_out:.0f}",
            format_usd(result.usd_per_1k),
            str(result.error_count),
            style="bold green" if result.name == winner else None,
        )
    out.print(table)
    for line in _deferral_notes(report):
        out.print(line, highlight=False, markup=False)
    for result in report.results:
        if result.error_count:
            first = next(e for e in result.errors if e)
            err_console.print(
                f"[yellow]{result.name}: {result.error_count} of {report.n} requests failed "
                f"(they score as wrong); first: {first}[/]",
                highlight=False,
            )
    colour = "green" if winner else "red"
    out.print(f"[bold {colour}]{report.recommendation.message}[/]", highlight=False)
    if report.recommendation.winner_rungs:
        rungs = ", ".join(report.recommendation.winner_rungs)
        out.print(f"  configure it as a cascade: rungs: [{rungs}]", highlight=False, markup=False)
    for c in report.recommendation.comparisons:
        out.print(
            f"  vs {c.other}: {describe_cost(c.cost_ratio)}, {describe_speed(c.latency_ratio)}; "
            f"its {report.settings.metric} {c.quality}",
            highlight=False,
        )


def _interval(estimate: Estimate) -> str:
    return f"{estimate.value:.3f} [{estimate.low:.2f}, {estimate.high:.2f}]"


def _deferral_notes(report: EvalReport) -> list[str]:
    """For each candidate that defers: what it answers, how well, and its cascades' quality."""
    metric = report.settings.metric
    lines = []
    for result in report.results:
        if result.coverage is None:
            continue
        answered = report.n - result.deferred_count
        lines.append(
            f"{result.name} answers {answered} of {report.n} inputs (coverage "
            f"{result.coverage}) at {metric} {result.metrics[metric]} on those it answers; "
            "it defers the rest, so it is recommended only as the first rung of a cascade:"
        )
        for other in report.results:
            if other.parts[:1] == (result.name,):
                lines.append(
                    f"  {other.name}: {metric} {other.metrics[metric]} on all {report.n}, "
                    f"{format_usd(other.usd_per_1k)} / 1k requests"
                )
    return lines


def _write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=2, default=str)
    if str(path) == "-":
        sys.stdout.write(text + "\n")  # plain: a console would wrap long lines
        return
    path.write_text(text + "\n", encoding="utf-8")
    err_console.print(f"JSON: {path}")


def _check_outputs(*paths: Path | None) -> None:
    """Refuse an output path that cannot be written before any model runs."""
    for path in paths:
        if path is not None and str(path) != "-" and not path.parent.is_dir():
            fail(f"cannot write {path}: the folder {path.parent} does not exist")


def cost_command(
    requests: float = typer.Option(
        1e6, "--requests", "-r", min=1, help="Number of requests, e.g. 1e6."
    ),
    input_tokens: int = typer.Option(
        800, "--input-tokens", min=0, help="Input tokens per request."
    ),
    output_tokens: int = typer.Option(
        200, "--output-tokens", min=0, help="Output tokens per request."
    ),
    models: str = typer.Option(
        None, "--models", "-m", help="Comma-separated models (default: all)."
    ),
    json_out: Path = typer.Option(
        None, "--json", help="Write the projection as JSON (- for stdout)."
    ),
) -> None:
    """Project the cost of a workload on each model; self-hosted ones also show compute hours."""
    _check_outputs(json_out)
    workload = Workload(requests, input_tokens, output_tokens)
    try:
        registry = Registry(load_config())
        rows = project(registry, workload, _split(models))
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    out = err_console if str(json_out) == "-" else console
    _print_projection(rows, workload, registry.baseline_model, out)
    if json_out is not None:
        _write_json(
            {
                "requests": requests,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "baseline_model": registry.baseline_model,
                "models": [r.to_json() for r in rows],
            },
            json_out,
        )


def _print_projection(
    rows: list[Projection], workload: Workload, baseline: str, out: Console
) -> None:
    title = (
        f"{workload.requests:,.0f} requests x ({workload.input_tokens} in + "
        f"{workload.output_tokens} out) tokens"
    )
    table = Table(title=title)
    for column in (
        "model",
        "tier",
        "total",
        "per request",
        f"vs {baseline}",
        "price from",
        "tokens/s",
        "hours",
        "$ / hour",
    ):
        table.add_column(
            column, justify="left" if column in ("model", "tier", "price from") else "right"
        )
    base = next((r.usd_total for r in rows if r.model == baseline), None)
    for row in rows:
        table.add_row(
            row.model,
            row.tier,
            _usd(row.usd_total),
            format_usd(row.usd_per_request),
            "baseline" if row.model == baseline else _versus(base, row.usd_total),
            row.price_source,
            f"{row.tokens_per_second:,.1f}" if row.tokens_per_second else "-",
            f"{row.hours:,.1f}" if row.hours is not None else "-",
            f"{row.hourly_usd:,.2f}" if row.hourly_usd is not None else "-",
        )
    out.print(table)


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else format_usd(value)


def _versus(base: float | None, cost: float) -> str:
    if base is None or base == 0:
        return "-"
    if cost == 0:
        return "free"
    ratio = base / cost
    return (
        "baseline"
        if math.isclose(ratio, 1.0)
        else f"{ratio:,.3g}x cheaper"
        if ratio > 1
        else f"{1 / ratio:,.3g}x pricier"
    )
