"""`smallfirst models` and `smallfirst ask`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from smallfirst.cli.common import console, err_console, fail, format_usd, run
from smallfirst.config import ModelConfig, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.models.llamacpp import resolve_model_path
from smallfirst.models.registry import Registry, save_measured_throughput
from smallfirst.routing.hops import HopLog
from smallfirst.target import CascadeTarget, resolve
from smallfirst.types import ChatRequest, GenerationParams, Message, Usage


def register(app: typer.Typer) -> None:
    app.command("models")(models)
    app.command("ask")(ask)


def _registry() -> Registry:
    try:
        return Registry(load_config())
    except SmallfirstError as exc:
        fail(exc.message)
        raise


def models(
    measure: bool = typer.Option(
        False, "--measure", help="Measure tokens/s of local models (prices self-hosted ones)."
    ),
) -> None:
    """List the configured models with tier, backend and price per million tokens."""
    registry = _registry()
    if measure:
        run(_measure_all(registry))
        registry = _registry()
    table = Table(title="configured models")
    table.add_column("name", no_wrap=True)
    for column in ("role", "tier", "backend", "$ in /Mtok", "$ out /Mtok", "price from", "context"):
        table.add_column(column, justify="right" if "$" in column else "left")
    table.add_column("weights (llama.cpp)")
    for entry in registry.by_tier():
        marks = []
        if entry.name == registry.default_model:
            marks.append("default")
        if entry.name == registry.baseline_model:
            marks.append("baseline")
        table.add_row(
            entry.name,
            ", ".join(marks),
            entry.tier,
            entry.config.backend,
            f"{entry.price.input_per_mtok:.4f}",
            f"{entry.price.output_per_mtok:.4f}",
            entry.price.source,
            str(entry.config.context),
            _weights(entry.config),
        )
    console.print(table)


def _weights(config: ModelConfig) -> str:
    """Base GGUF, LoRA adapter and the memory their weights take, for llama.cpp models."""
    if config.backend != "llamacpp":
        return ""
    try:
        files = [resolve_model_path(config)]
    except SmallfirstError as exc:
        return f"[red]{exc.message}[/]"
    if config.adapter:
        files.append(Path(config.adapter))
    sizes = [f.stat().st_size if f.is_file() else 0 for f in files]
    names = [f.name if size else f"{f} (missing)" for f, size in zip(files, sizes, strict=True)]
    return f"{' + adapter '.join(names)}, {sum(sizes) / 2**20:.0f} MiB"


async def _measure_all(registry: Registry) -> None:
    request = ChatRequest(
        [Message("user", "Write a short paragraph about the sea.")],
        GenerationParams(max_tokens=64, temperature=0.0),
    )
    try:
        for entry in registry.entries.values():
            if not entry.capabilities.embedded:  # throughput is measured here, in process
                continue
            provider = registry.provider(entry.name)
            await provider.chat(request)  # warm-up: load weights, fill caches
            result = await provider.chat(request)
            tps = result.usage.output_tokens / max(result.latency_s, 1e-9)
            save_measured_throughput(entry.name, tps)
            err_console.print(f"{entry.name}: {tps:.1f} tokens/s")
    finally:
        await registry.aclose()


def ask(
    prompt: str = typer.Argument(..., help="What to ask. Use - to read from standard input."),
    model: str = typer.Option(
        "default", "--model", "-m", help="A configured model, a router (auto) or a cascade."
    ),
    system: str = typer.Option(None, "--system", "-s", help="A system message."),
    json_schema: Path = typer.Option(
        None, "--json-schema", help="A JSON schema file; the answer is constrained to match it."
    ),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=2.0),
) -> None:
    """Ask one model; the answer streams, then tokens, latency and cost are printed."""
    if prompt == "-":
        prompt = sys.stdin.read()
    schema = None
    if json_schema is not None:
        try:
            schema = json.loads(json_schema.read_text())
        except (OSError, ValueError) as exc:
            fail(f"cannot read the JSON schema {json_schema}: {exc}")
    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    request = ChatRequest(
        messages,
        GenerationParams(max_tokens=max_tokens, temperature=temperature, json_schema=schema),
    )
    run(_ask(_registry(), model, request))


async def _ask(registry: Registry, model: str, request: ChatRequest) -> None:
    target = resolve(model, registry)
    route = await target.aroute(request)
    entry = route.model
    log = HopLog()

    def answered_by(name: str) -> None:
        nonlocal entry
        entry = registry.get(name)

    started = time.perf_counter()
    first: float | None = None
    usage = Usage()
    try:
        deltas = target.stream(request, route=route, log=log, on_model=answered_by)
        async for delta in deltas:
            if delta.text:
                first = first or time.perf_counter() - started
                sys.stdout.write(delta.text)
                sys.stdout.flush()
            if delta.usage is not None:
                usage = delta.usage
    finally:
        await registry.aclose()
    sys.stdout.write("\n")
    elapsed = time.perf_counter() - started
    if isinstance(target, CascadeTarget):  # every rung and check was paid for
        entry = registry.get(log.hops[-1].model or entry.name)
        cost = sum(hop.cost_usd for hop in log.hops)
    else:
        cost = entry.price.cost(usage)
    err_console.print(
        f"[dim]{entry.name} ({entry.tier}) · {usage.input_tokens} in / {usage.output_tokens} out "
        f"tokens · first token {1000 * (first or elapsed):.0f} ms · total {1000 * elapsed:.0f} ms "
        f"· {format_usd(cost)}[/]",
        highlight=False,
    )
