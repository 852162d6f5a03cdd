"""`smallfirst replay outcomes.csv`: an OpenAI-compatible server answering from recordings."""

from __future__ import annotations

from pathlib import Path

import typer

from smallfirst.cli.common import err_console, fail
from smallfirst.errors import SmallfirstError


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    outcomes: Path = typer.Argument(..., help="CSV with a `prompt` column and an answer column."),
    port: int = typer.Option(8090, "--port", min=1, max=65535),
    host: str = typer.Option("127.0.0.1", "--host"),
    model: str = typer.Option("replay", "--model", help="The model name the server reports."),
    accuracy: float = typer.Option(
        None, "--accuracy", min=0.0, max=1.0, help="Answer this share right, the rest wrongly."
    ),
    error_rate: float = typer.Option(
        0.0, "--error-rate", min=0.0, max=1.0, help="Share of requests answered with a 503."
    ),
    latency: float = typer.Option(0.0, "--latency", min=0.0, help="Seconds before each answer."),
    seed: int = typer.Option(0, "--seed", help="Fixes which items are wrong and which fail."),
    prompt_column: str = typer.Option("prompt", "--prompt-column"),
    answer_column: str = typer.Option(
        None, "--answer-column", help="Default: answer, output, response, label or gold."
    ),
) -> None:
    """Serve recorded answers (or gold labels) as an OpenAI-compatible model, for offline trials."""
    import uvicorn

    from smallfirst.models.replay import ReplayBook
    from smallfirst.testing.replay import ReplayServer

    try:
        book = ReplayBook.from_csv(
            outcomes,
            prompt_column=prompt_column,
            answer_column=answer_column,
            accuracy=accuracy,
            error_rate=error_rate,
            seed=seed,
        )
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    server = ReplayServer(book, model=model, latency_s=latency)
    err_console.print(
        f"replaying {len(book.records)} recorded answers as model {model!r} on "
        f"http://{host}:{port}/v1 (accuracy {accuracy if accuracy is not None else 'as recorded'}, "
        f"error rate {error_rate}). In smallfirst.yaml:\n"
        f"  - name: {model}\n    backend: openai\n    base_url: http://{host}:{port}/v1\n"
        f"    tier: large\n    price: {{input: 2.5, output: 10.0}}",
        highlight=False,
        markup=False,
    )
    uvicorn.run(server.app, host=host, port=port, log_level="warning")
