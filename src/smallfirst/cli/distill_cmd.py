"""`smallfirst distill`: teacher labels -> example bank -> students and fine-tuning data.

`smallfirst distill TASK.yaml --teacher M --inputs F` labels (the default subcommand);
`student`, `export`, `finetune` and `banks` work on the bank it fills.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer import _click  # the click typer ships: TyperGroup's methods take its Context
from typer.core import TyperGroup

from smallfirst.cli.common import console, err_console, fail, format_usd, run
from smallfirst.config import EMBEDDED_MODEL_NAME, load_config, state_dir
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.export import FORMATS, export_bank
from smallfirst.distill.finetune import (
    FinetuneSettings,
    config_lines,
    prepare_finetune,
    run_finetune,
)
from smallfirst.distill.inputs import read_inputs
from smallfirst.distill.lora_train import TrainSettings, TrainState
from smallfirst.distill.prompts import task_summary
from smallfirst.distill.student import KINDS, train_from_bank
from smallfirst.distill.teacher import LabelProgress, LabelSettings, TeacherRun
from smallfirst.errors import InvalidRequestError, SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.tasks.spec import load_spec


class _LabelByDefault(TyperGroup):
    """`smallfirst distill task.yaml ...` means `smallfirst distill label task.yaml ...`."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["label", *args]
        return super().parse_args(ctx, args)


distill_app = typer.Typer(
    cls=_LabelByDefault,
    help="Make a small model good at one task: a large teacher labels, small students learn.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(distill_app, name="distill")


@distill_app.command("label")
def label(
    task: Path = typer.Argument(..., help="Task spec YAML (see `smallfirst eval`)."),
    teacher: str = typer.Option(..., "--teacher", help="Configured model that labels."),
    inputs: Path = typer.Option(..., "--inputs", help="Unlabelled inputs, JSONL."),
    bank: str = typer.Option(None, "--bank", help="Bank name or .sqlite path (default: task)."),
    max_usd: float = typer.Option(5.0, "--max-usd", min=0, help="Stop before spending more."),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=256),
    max_attempts: int | None = typer.Option(
        None,
        "--max-attempts",
        min=1,
        max=10,
        help="Calls to the teacher per input, retries included (default: failover.retries + 1).",
    ),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1),
    background: Path = typer.Option(
        None,
        "--background",
        help="Unlabelled traffic that is NOT this task's job (JSONL, like --inputs): stored "
        "unlabelled at no cost; the student learns to defer inputs like it.",
    ),
    out_of_scope: bool = typer.Option(
        False,
        "--out-of-scope",
        help="Classify tasks: the teacher may answer 'none' for an input that fits no label; "
        "such inputs become background (paid, counted in the bank's cost).",
    ),
) -> None:
    """Label inputs with the teacher into an example bank (resumable; reruns skip done ones)."""
    try:
        spec = load_spec(task)
        texts = read_inputs(inputs)
        others = read_inputs(background) if background is not None else []
        others = [text for text in others if text not in set(texts)]
        config = load_config()
        if max_attempts is not None:  # the failover policy's retries, for this run only
            retries = {"retries": max_attempts - 1}
            config.failover = config.failover.model_copy(update=retries)
        registry = Registry(config)
        entry = registry.get(teacher)
        if out_of_scope and spec.kind != "classify":
            raise InvalidRequestError(f"--out-of-scope needs a classify task, not {spec.kind}")
        target = _bank_for(bank or spec.name, task_summary(spec))
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    if others:
        added = target.add_background(others)
        console.print(
            f"background: {added} new of {len(others)} inputs "
            f"({target.background_count()} in the bank)",
            highlight=False,
        )
    settings = LabelSettings(max_usd, concurrency, max_tokens, out_of_scope=out_of_scope)
    result = _label_with_progress(target, registry, entry.name, texts, settings)
    _print_label_report(target, result, settings)


def _bank_for(name: str, summary: dict) -> ExampleBank:
    bank = ExampleBank.open(name)
    existing = bank.meta().get("task")
    if existing and existing != summary:
        raise InvalidRequestError(
            f"bank {name!r} was filled for a different task spec (name, labels or instructions "
            "changed); pass --bank NEW_NAME to start a new bank"
        )
    bank.set_meta(task=summary, embedder="minilm")
    return bank


def _label_with_progress(
    bank: ExampleBank, registry: Registry, teacher: str, texts: list[str], settings: LabelSettings
) -> LabelProgress:
    columns = (
        TextColumn("[bold]labelling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[cost]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        handle = bar.add_task("label", total=None, cost="$0", failed=0)

        def update(state: LabelProgress) -> None:
            bar.update(
                handle,
                total=state.total,
                completed=state.done,
                cost=format_usd(state.cost_usd),
                failed=state.failed,
            )

        async def go() -> LabelProgress:
            try:
                task = bank.meta()["task"]
                job = TeacherRun.from_registry(bank, registry, teacher, task, settings, update)
                return await job.run(texts)
            finally:
                await registry.aclose()

        return run(go())


def _print_label_report(bank: ExampleBank, result: LabelProgress, settings: LabelSettings) -> None:
    table = Table(title=f"bank {bank.path}")
    table.add_column("labelled now", justify="right")
    table.add_column("already in bank", justify="right")
    table.add_column("failed", justify="right")
    if settings.out_of_scope:
        table.add_column("out of scope", justify="right")
    table.add_column("cost this run", justify="right")
    table.add_column("bank size", justify="right")
    refused = [str(result.out_of_scope)] if settings.out_of_scope else []
    table.add_row(
        str(result.labelled),
        str(result.skipped),
        str(result.failed),
        *refused,
        format_usd(result.cost_usd),
        str(len(bank)),
    )
    console.print(table)
    for text, reason in list(result.failures.items())[:5]:
        err_console.print(f"[red]failed[/] {text[:60]!r}: {reason}", highlight=False)
    if result.stopped_by_cap:
        left = result.total - result.labelled - result.failed
        err_console.print(
            f"[yellow]stopped before the ${settings.max_usd:g} cap:[/] {left} inputs not "
            "labelled; rerun with a higher --max-usd to continue (done items are kept)"
        )
    with err_console.status("indexing the bank (MiniLM embeddings)"):
        bank.vectors()


@distill_app.command("student")
def student(
    bank: str = typer.Argument(..., help="Bank name or .sqlite path."),
    out: Path = typer.Option(Path("student.joblib"), "--out", help="Student file to write."),
    target_accuracy: float = typer.Option(0.97, "--target-accuracy", min=0.01, max=1.0),
    kind: str = typer.Option("logreg", "--model", help="logreg, mlp or knn (bank vote)."),
    folds: int = typer.Option(5, "--folds", min=2, max=20),
) -> None:
    """Train the tier-0 classifier on the bank; it answers only at the target accuracy."""
    if kind not in KINDS:
        fail(f"--model must be one of {', '.join(KINDS)}, not {kind!r}")
    try:
        source = ExampleBank.open_existing(bank)
        with err_console.status(f"training on {len(source)} examples"):
            trained = train_from_bank(
                source,
                target_accuracy=target_accuracy,
                kind=kind,
                folds=folds,
            )
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    trained.save(out)
    held = trained.heldout
    background = f", {source.background_count()} background" if trained.background else ""
    console.print(
        f"student -> {out}\n"
        f"  {held.n} examples{background}, {len(trained.labels)} labels, {folds}-fold held-out "
        f"accuracy {held.accuracy:.3f}\n"
        f"  {held.summary()}\n"
        f"  target {target_accuracy}: the lower bound must reach it; confidence threshold "
        f"{trained.threshold:.3f}, similarity threshold {trained.similarity_threshold:.3f}, "
        f"temperature {trained.temperature:.2f}\n"
        "  use it as tier 0 in smallfirst.yaml:\n"
        f"    - {{name: student, backend: student, tier: tiny, options: {{path: {out}}}}}",
        highlight=False,
    )
    caveat = trained.out_of_scope_caveat()
    if caveat:
        err_console.print(f"[yellow]out of scope:[/] {caveat}", highlight=False)
    if not held.answered_n:
        err_console.print(
            f"[yellow]no threshold reaches {target_accuracy} with {held.level:.0%} confidence on "
            f"{held.n} held-out examples: the student always defers.[/] Label more examples "
            "or lower --target-accuracy."
        )


@distill_app.command("export")
def export(
    bank: str = typer.Argument(..., help="Bank name or .sqlite path."),
    out: Path = typer.Option(..., "--out", help="JSONL file to write."),
    fmt: str = typer.Option("openai", "--format", help=f"One of: {', '.join(FORMATS)}."),
    valid_share: float = typer.Option(0.0, "--valid-share", help="Also write a .valid.jsonl."),
) -> None:
    """Write fine-tuning data: OpenAI chat JSONL or prompt/completion JSONL (TRL, peft)."""
    try:
        written = export_bank(ExampleBank.open_existing(bank), out, fmt, valid_share=valid_share)  # type: ignore[arg-type]
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    for path, count in written.items():
        console.print(f"{count} records -> {path}", highlight=False)


@distill_app.command("finetune")
def finetune_cmd(
    bank: str = typer.Argument(..., help="Bank name or .sqlite path."),
    base: str = typer.Option(
        EMBEDDED_MODEL_NAME, "--base", help="A configured llama.cpp model or a local .gguf."
    ),
    task: Path = typer.Option(
        None, "--task", help="The task spec the bank was labelled with (keeps label descriptions)."
    ),
    out: Path = typer.Option(None, "--out", help="Output folder (default: state dir/adapters)."),
    epochs: float = typer.Option(3.0, "--epochs", min=0.05),
    max_minutes: float = typer.Option(
        None, "--max-minutes", min=0.1, help="Stop (and keep the best so far) after this run."
    ),
    rank: int = typer.Option(8, "--rank", min=1, max=256),
    learning_rate: float = typer.Option(5e-4, "--learning-rate", min=1e-7, max=1.0),
    batch_size: int = typer.Option(8, "--batch-size", min=1, max=512),
    valid_share: float = typer.Option(0.1, "--valid-share", help="Held out for early stopping."),
    patience: int = typer.Option(3, "--patience", min=1, help="Evaluations without a new best."),
) -> None:
    """LoRA-tune the embedded model on the bank's teacher pairs (CPU, or a GPU when present);
    rerun the same command to resume an interrupted run."""
    train = TrainSettings(
        rank=rank,
        alpha=2.0 * rank,
        learning_rate=learning_rate,
        batch_size=batch_size,
        epochs=epochs,
        max_minutes=max_minutes,
        patience=patience,
    )
    try:
        spec = load_spec(task) if task is not None else None
        settings = FinetuneSettings(base=base, valid_share=valid_share, train=train)
        plan = prepare_finetune(bank, settings, out=out, spec=spec)
    except SmallfirstError as exc:
        fail(exc.message)
        raise
    long = f", {plan.skipped_long} too long left out" if plan.skipped_long else ""
    err_console.print(
        f"fine-tuning {plan.base.name} ({plan.base.architecture}, {plan.base.parameters / 1e6:.0f}M"
        f" parameters) on {plan.device}: {len(plan.train)} pairs, {len(plan.valid)} held out"
        f"{long}; needs about {plan.needed_bytes / 2**30:.1f} GiB -> {plan.out}",
        highlight=False,
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  held-out {task.fields[val]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console) as bar:
        handle = bar.add_task("loading base", total=None, loss="-", val="-")

        def update(state: TrainState) -> None:
            bar.update(
                handle,
                description="training",
                total=state.total_steps,
                completed=state.step,
                loss=f"{state.loss:.3f}",
                val=f"{state.val_loss:.3f} (best {state.best_val_loss:.3f})",
            )

        try:
            result = run_finetune(plan, update)
        except SmallfirstError as exc:
            fail(exc.message)
            raise
    state = result.state
    resumed = f", resumed at step {state.resumed_from}" if state.resumed_from else ""
    console.print(
        f"LoRA adapter -> {result.adapter} ({result.adapter_bytes / 2**20:.1f} MiB)\n"
        f"  {state.stopped} after {state.step} of {state.total_steps} steps{resumed}, "
        f"{result.minutes:.1f} min; best held-out loss {state.best_val_loss:.4f} at step "
        f"{state.best_step}\n  serve it: add to smallfirst.yaml\n{config_lines(result)}",
        highlight=False,
    )


@distill_app.command("banks")
def banks() -> None:
    """List the example banks in the state directory."""
    table = Table(title="example banks")
    for column in ("name", "task", "kind", "examples", "failed", "teacher $"):
        table.add_column(column)
    for path in sorted((state_dir() / "banks").glob("*.sqlite")):
        bank = ExampleBank(path)
        task = bank.meta().get("task") or {}
        table.add_row(
            path.stem,
            task.get("name", "?"),
            task.get("kind", "?"),
            str(len(bank)),
            str(len(bank.failures())),
            format_usd(bank.total_cost()),
        )
        bank.close()
    console.print(table)
