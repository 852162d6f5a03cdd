"""`smallfirst serve`: the OpenAI-compatible gateway (what `make run` starts)."""

from __future__ import annotations

import typer

from smallfirst.cli.common import console, fail
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: str = typer.Option(None, "--host", help="Address to listen on (default server.host)."),
    port: int = typer.Option(None, "--port", "-p", help="Port (default server.port, 8080)."),
    auth: bool = typer.Option(
        None, "--auth/--no-auth", help="Require API keys (default server.auth)."
    ),
    config: str = typer.Option(None, "--config", "-c", help="Path to smallfirst.yaml."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Start the gateway; local models load in the background so it answers /health at once."""
    import uvicorn

    from smallfirst.models.registry import Registry
    from smallfirst.server import create_app
    from smallfirst.server.edge_limits import uvicorn_options

    try:
        cfg = load_config(config)
        registry = Registry(cfg)
        app = create_app(registry=registry, auth=auth, preload=True)
    except SmallfirstError as exc:
        fail(exc.message)
        return
    gateway = app.state.gateway
    host = host or cfg.server.host
    port = port or cfg.server.port
    console.print(f"smallfirst gateway on [bold]http://{host}:{port}/v1[/]", highlight=False)
    for entry in registry.by_tier():
        marks = [m for m, n in (("default", registry.default_model),) if n == entry.name]
        if entry.name == registry.baseline_model:
            marks.append("baseline")
        console.print(
            f"  {entry.name:<24} {entry.tier:<7} {entry.config.backend:<10} {' '.join(marks)}",
            highlight=False,
        )
    console.print(
        f"  routers: {', '.join(gateway.router_names())} · auth "
        f"{'on' if gateway.auth_required else 'off'} · dashboard /dashboard · metrics /metrics"
        " · health /health",
        highlight=False,
    )
    console.file.flush()  # seen at once in logs and pipes, not when the buffer fills
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        **uvicorn_options(cfg.server),
    )
