"""`smallfirst kb`: build, search and ask knowledge bases."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from smallfirst.cli.common import console, err_console, fail, run
from smallfirst.config import load_config
from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry

kb_app = typer.Typer(
    help="Knowledge bases: documents a small model can answer from, with citations.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")


@kb_app.callback()
def _quiet_library_warnings() -> None:
    """The commands print skipped files themselves; do not print them twice via logging."""
    logger = logging.getLogger("smallfirst.retrieval")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _guard(action):
    """Run `action()`; our errors become a one-line message and exit code 1."""
    try:
        return action()
    except SmallfirstError as exc:
        fail(exc.message)


@kb_app.command("add")
def add(
    name: str = typer.Argument(..., help="Knowledge base name (created when new)."),
    paths: list[Path] = typer.Argument(..., help="Files or folders: .txt .md .html .pdf"),
    chunk_chars: int = typer.Option(
        None, "--chunk-chars", help="Chunk size in characters (new bases; default 800)."
    ),
    overlap: int = typer.Option(
        None, "--overlap", help="Characters repeated between chunks (new bases; default 160)."
    ),
) -> None:
    """Add documents; unchanged files are skipped, changed files have their chunks replaced."""
    from smallfirst.retrieval.kb import KnowledgeBase

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")

    def action() -> None:
        with KnowledgeBase.create(name, chunk_chars, overlap) as kb:
            report = kb.add(list(paths))
            info = kb.info()
        for path in report.unsupported:
            err_console.print(f"[yellow]skipped[/] {path}: unsupported file type", highlight=False)
        for path in report.empty:
            err_console.print(f"[yellow]skipped[/] {path}: no text found", highlight=False)
        for path, why in report.failed:
            err_console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
        console.print(
            f"{name}: {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {report.chunks} chunks written; "
            f"now {info.documents} documents, {info.chunks} chunks",
            highlight=False,
        )

    _guard(action)


@kb_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="Knowledge base name."),
    paths: list[str] = typer.Argument(..., help="Documents, or folders, to take out."),
) -> None:
    """Take documents out of a knowledge base."""
    from smallfirst.retrieval.kb import KnowledgeBase

    def action() -> None:
        with KnowledgeBase.open(name) as kb:
            removed = kb.remove(list(paths))
        if not removed:
            fail(f"none of {', '.join(paths)} is in knowledge base {name!r}")
        console.print(f"{name}: removed {len(removed)} documents", highlight=False)

    _guard(action)


@kb_app.command("drop")
def drop(name: str = typer.Argument(..., help="Knowledge base to delete, with its files.")) -> None:
    """Delete a whole knowledge base."""
    from smallfirst.retrieval.kb import delete_knowledge_base

    _guard(lambda: delete_knowledge_base(name))
    console.print(f"deleted knowledge base {name}", highlight=False)


@kb_app.command("list")
def list_() -> None:
    """The knowledge bases with their document and chunk counts."""
    from smallfirst.retrieval.kb import list_knowledge_bases

    infos = _guard(list_knowledge_bases)
    if not infos:
        console.print("no knowledge bases yet: smallfirst kb add NAME DOCS_DIR")
        return
    table = Table(title="knowledge bases")
    for column in ("name", "documents", "chunks", "chunk chars", "overlap", "embedder"):
        table.add_column(column)
    for i in infos:
        table.add_row(
            i.name, str(i.documents), str(i.chunks), str(i.chunk_chars), str(i.overlap), i.embedder
        )
    console.print(table)


@kb_app.command("search")
def search(
    name: str = typer.Argument(..., help="Knowledge base name."),
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="How many chunks."),
    mode: str = typer.Option(
        "hybrid", "--mode", help="hybrid (default), dense (MiniLM) or keyword (BM25)."
    ),
) -> None:
    """The chunks most relevant to the query, with source and cosine score."""
    from smallfirst.retrieval.kb import KnowledgeBase

    def action() -> None:
        with KnowledgeBase.open(name) as kb:
            hits = kb.search(query, k, mode)  # type: ignore[arg-type]
        for rank, chunk in enumerate(hits, start=1):
            console.print(
                f"[bold]{rank}.[/] {chunk.score:.3f}  {chunk.source} #{chunk.ordinal}",
                highlight=False,
            )
            console.print(f"   {' '.join(chunk.text.split())}", highlight=False, markup=False)

    _guard(action)


@kb_app.command("ask")
def ask(
    name: str = typer.Argument(..., help="Knowledge base name."),
    question: str = typer.Argument(..., help="The question."),
    model: str = typer.Option("default", "--model", "-m", help="A model or router name."),
    k: int = typer.Option(4, "-k", min=1, max=20, help="Chunks put in the prompt."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1),
    min_score: float = typer.Option(
        None, "--min-score", help="Ignore chunks less similar than this (cosine)."
    ),
    extractive: bool = typer.Option(
        False, "--extractive", help="Ask the model to copy the answer span from a source."
    ),
) -> None:
    """Answer from the knowledge base, citing the chunks used."""
    from smallfirst.retrieval.answer import answer_with_kb
    from smallfirst.retrieval.kb import KnowledgeBase

    async def _ask() -> None:
        registry = Registry(load_config())
        try:
            with KnowledgeBase.open(name) as kb:
                answer = await answer_with_kb(
                    question, kb, registry, model, k, max_tokens, min_score, extractive
                )
        finally:
            await registry.aclose()
        console.print(answer.text, highlight=False, markup=False)
        for number in answer.citations:
            source = answer.sources[number - 1]
            console.print(f"[dim]\\[{number}] {escape(source.source)}[/]", highlight=False)
        if answer.not_found:
            err_console.print("[dim]the knowledge base does not contain the answer[/]")

    run(_ask())
