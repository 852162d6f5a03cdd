"""The `smallfirst` command. Each command group lives in its own module and registers here."""

from __future__ import annotations

import os

import typer

from smallfirst.config import CONFIG_ENV

app = typer.Typer(
    name="smallfirst",
    help="Run LLM traffic on the smallest model that works; escalate only when needed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        help="Path to smallfirst.yaml (default ./smallfirst.yaml).",
        envvar=CONFIG_ENV,
    ),
) -> None:
    if config:
        os.environ[CONFIG_ENV] = config


def _register() -> None:
    from smallfirst.cli import distill_cmd, eval_cmd, kb_cmd, models_cmd

    models_cmd.register(app)
    from smallfirst.cli import keys_cmd, ledger_cmd, report_cmd, serve_cmd

    serve_cmd.register(app)
    keys_cmd.register(app)
    report_cmd.register(app)
    ledger_cmd.register(app)
    kb_cmd.register(app)
    distill_cmd.register(app)
    eval_cmd.register(app)
    from smallfirst.cli import batch_cmd

    batch_cmd.register(app)
    from smallfirst.cli import pipeline_cmd

    pipeline_cmd.register(app)
    from smallfirst.cli import router_cmd

    router_cmd.register(app)
    from smallfirst.cli import cascade_cmd, replay_cmd

    cascade_cmd.register(app)
    replay_cmd.register(app)
    from smallfirst.cli import tasks_cmd

    tasks_cmd.register(app)
    from smallfirst.cli import cache_cmd

    cache_cmd.register(app)
    from smallfirst.cli import learn_tasks_cmd

    learn_tasks_cmd.register(app)
    from smallfirst.cli import learn_cmd

    learn_cmd.register(app)


_register()


def main() -> None:
    app()
