"""`smallfirst router train | eval | calibrate | decide`: learned routing from outcome files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from smallfirst.cli.common import console, err_console, fail
from smallfirst.errors import SmallfirstError

router_app = typer.Typer(
    help="Train, evaluate and calibrate learned routers (the smallest model that will do).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(router_app, name="router")


def _models_option():
    return typer.Option(
        None, "--models", help="Comma-separated score columns to use (default all)."
    )


def _first_turn_option():
    return typer.Option(
        False,
        "--first-turn",
        help="Conversations (MT-Bench): one item per question, routed on its first turn and "
        "scored over all its turns (RouteLLM's protocol).",
    )


def _load(
    path: Path,
    models: str | None,
    exclude: Path | None,
    costs: list[str],
    prices: Path | None,
    first_turn: bool = False,
):
    from smallfirst.routing.outcomes import (
        OutcomesError,
        first_turn_per_question,
        load_outcomes,
        load_prices,
    )

    names = [m.strip() for m in models.split(",")] if models else None
    outcomes = load_outcomes(path, names, exclude=exclude)
    if outcomes.skipped:
        err_console.print(
            f"note: {path}: skipped {outcomes.skipped} row(s) missing a score for "
            f"{', '.join(outcomes.models)}",
            highlight=False,
            soft_wrap=True,
        )
    if first_turn:
        outcomes = first_turn_per_question(outcomes)
    if prices is not None:
        outcomes.costs = load_prices(prices, outcomes.models)
        if not outcomes.costs:
            raise OutcomesError(f"{prices} does not price every model of {outcomes.models}")
    for item in costs:
        name, _, value = item.rpartition("=")
        if name not in outcomes.models:
            raise OutcomesError(f"--cost {item!r}: {name!r} is not one of {outcomes.models}")
        outcomes.costs[name] = float(value)
    return outcomes


@router_app.command("train")
def train(
    outcomes_path: Path = typer.Argument(
        ..., metavar="OUTCOMES", help="CSV/JSONL/dir of outcomes."
    ),
    out: Path = typer.Option(Path("router.json"), "--out", "-o", help=".json or .joblib"),
    kind: str = typer.Option("knn", "--kind", help="knn, linear or mlp."),
    embedder: str = typer.Option("static", "--embedder", help="static (fast) or minilm."),
    models: str = _models_option(),
    cost: list[str] = typer.Option([], "--cost", help="Price per model: NAME=PRICE (repeat)."),
    prices: Path = typer.Option(None, "--prices", help="LLMRouter-style default_llm.json."),
    exclude: Path = typer.Option(None, "--exclude", help="JSONL of prompts to drop."),
    k: int = typer.Option(None, "--k", help="Neighbours for knn (default 40)."),
    large_share: float = typer.Option(None, "--large-share", help="Calibrate: share to large."),
    quality_target: float = typer.Option(0.95, "--quality-target", help="Calibrate otherwise."),
    first_turn: bool = _first_turn_option(),
) -> None:
    """Learn per-model quality from OUTCOMES and write a router file."""
    from smallfirst.routing.calibration import calibrate_quality, calibrate_share
    from smallfirst.routing.features import embed_conversations, router_embedder
    from smallfirst.routing.learned import predict_quality, prompt_template, train_router

    try:
        outcomes = _load(outcomes_path, models, exclude, cost, prices, first_turn)
        template = prompt_template(outcomes.turns)
        vectors = embed_conversations(router_embedder(embedder), outcomes.turns, template)
        router = train_router(outcomes, kind, embedder, vectors, template, k=k)
        pred = predict_quality(router, vectors)
        source = f"training data {outcomes_path}"
        if large_share is not None:
            router.calibration = calibrate_share(router, pred, large_share, source)
        else:
            router.calibration = calibrate_quality(router, pred, quality_target, source)
        router.save(out)
    except (SmallfirstError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    if router.trained_on.get("costs_assumed"):
        err_console.print("note: no prices given; assumed the better-scoring model costs more")
    console.print(
        f"trained {kind} router on {len(outcomes)} prompts x {len(outcomes.models)} models"
    )
    console.print(router.calibration.explanation, highlight=False, soft_wrap=True)
    console.print(f"wrote {out}", soft_wrap=True)


@router_app.command("eval")
def evaluate_cmd(
    outcomes_path: Path = typer.Argument(
        None, metavar="[OUTCOMES]", help="Cross-validate on this set (or give --train/--test)."
    ),
    router_path: Path = typer.Option(None, "--router", help="Evaluate this router file instead."),
    train_path: Path = typer.Option(None, "--train", help="Out of domain: train on this set..."),
    test_path: Path = typer.Option(None, "--test", help="...and test on this one."),
    kind: str = typer.Option(
        "knn",
        "--kind",
        help="knn, linear, mlp, or auto (picked on inner folds of the training data).",
    ),
    embedder: str = typer.Option("static", "--embedder"),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    models: str = _models_option(),
    cost: list[str] = typer.Option([], "--cost", help="NAME=PRICE (repeat)."),
    prices: Path = typer.Option(None, "--prices"),
    exclude: Path = typer.Option(None, "--exclude", help="JSONL of prompts to drop."),
    exclude_test: Path = typer.Option(None, "--exclude-test", help="JSONL to drop from --test."),
    first_turn: bool = _first_turn_option(),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples (0: none)."),
    plot_path: Path = typer.Option(Path("router_curves.png"), "--plot", help="PNG to write."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics as JSON."),
) -> None:
    """APGR / CPT / saving vs random (two models) or AIQ (N models) beside random, the single
    models and the oracle, with bootstrap intervals; in domain (k-fold) or --train A --test B."""
    from smallfirst.routing import evaluation
    from smallfirst.routing.features import embed_conversations, router_embedder
    from smallfirst.routing.learned import predict_conversations, prompt_template
    from smallfirst.routing.router_file import load_router_file
    from smallfirst.routing.selection import describe, select_router

    if (train_path is None) != (test_path is None):
        fail("give both --train and --test (out of domain), or neither")
    if (outcomes_path is None) == (train_path is None):
        fail("give OUTCOMES (cross-validation) or --train A --test B, not both")
    try:
        if train_path is not None:
            train = _load(train_path, models, exclude, cost, prices, first_turn)
            outcomes = _load(test_path, models, exclude_test, cost, prices, first_turn)
            outcomes.costs = dict(train.costs) or outcomes.costs
            options: dict = {}
            if kind == "auto":
                template = prompt_template(train.turns)
                vectors = embed_conversations(router_embedder(embedder), train.turns, template)
                chosen = select_router(train, vectors, embedder=embedder)
                kind, options = chosen.kind, chosen.options
                err_console.print(
                    f"picked {chosen.label} on {train_path.name}'s inner folds "
                    f"(score {chosen.score:.3f})",
                    highlight=False,
                )
            pred, _ = evaluation.train_and_test(train, outcomes, kind, embedder, **options)
            outcomes = outcomes.select_models(train.models)
            label = f"{describe(kind, options)}/{embedder} (trained on {train_path.name})"
            title = f"{train_path.name} -> {test_path.name}"
        else:
            outcomes = _load(outcomes_path, models, exclude, cost, prices, first_turn)
            title = str(outcomes_path.name)
            if router_path is not None:
                router = load_router_file(router_path)
                outcomes = outcomes.select_models(router.models)
                outcomes.costs = dict(zip(router.models, router.costs, strict=True))
                pred = predict_conversations(router, outcomes.turns)
                label = f"{router.kind} (file)"
            else:
                if kind == "auto":
                    fail("--kind auto picks on inner folds of --train data; give --train/--test")
                template = prompt_template(outcomes.turns)
                vectors = embed_conversations(router_embedder(embedder), outcomes.turns, template)
                pred, _ = evaluation.cross_validate(outcomes, vectors, kind, embedder, folds)
                label = f"{kind}/{embedder} ({folds}-fold CV, in domain)"
        report = evaluation.evaluate(outcomes, pred, label, resamples > 0, resamples)
        evaluation.plot(report, plot_path, title=title)
    except (SmallfirstError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    if as_json:
        payload: dict[str, object] = {name: values for name, values in report.rows}
        for name, bounds in report.intervals.items():
            payload[f"{name} interval"] = {
                k: None if e is None else [e.low, e.high] for k, e in bounds.items()
            }
        console.print_json(json.dumps(payload))
    else:
        console.print(
            f"{len(outcomes)} prompts, models: {', '.join(outcomes.models)}", soft_wrap=True
        )
        console.print(evaluation.format_report(report), highlight=False, soft_wrap=True)
    console.print(f"plot: {plot_path}", soft_wrap=True)


@router_app.command("calibrate")
def calibrate(
    router_path: Path = typer.Argument(..., metavar="ROUTER"),
    large_share: float = typer.Option(None, "--large-share", help="Share of traffic to large."),
    quality_target: float = typer.Option(None, "--quality-target", help="Share of best quality."),
    prompts: Path = typer.Option(None, "--prompts", help="Your traffic: .jsonl/.csv/.txt."),
    outcomes_path: Path = typer.Option(None, "--outcomes", help="Outcomes: measured quality."),
    out: Path = typer.Option(None, "--out", help="Write here instead of updating ROUTER."),
) -> None:
    """Set the threshold for a share of large calls or a quality target on your prompts."""
    from smallfirst.routing.calibration import calibrate_quality, calibrate_share, load_prompts
    from smallfirst.routing.learned import predict_conversations, score_range
    from smallfirst.routing.outcomes import load_outcomes
    from smallfirst.routing.router_file import load_router_file

    if (large_share is None) == (quality_target is None):
        fail("give exactly one of --large-share or --quality-target")
    if (prompts is None) == (outcomes_path is None):
        fail("give exactly one of --prompts or --outcomes")
    try:
        router = load_router_file(router_path)
        truth = None
        if outcomes_path is not None:
            outcomes = load_outcomes(outcomes_path, router.models)
            turns, source = outcomes.turns, str(outcomes_path)
            lo, hi = score_range(outcomes.scores)
            truth = (outcomes.scores - lo) / (hi - lo)
        else:
            turns, source = load_prompts(prompts), str(prompts)
        pred = predict_conversations(router, turns)
        if large_share is not None:
            router.calibration = calibrate_share(router, pred, large_share, source)
        else:
            router.calibration = calibrate_quality(router, pred, quality_target, source, truth)
        router.save(out or router_path)
    except (SmallfirstError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    console.print(router.calibration.explanation, highlight=False, soft_wrap=True)
    console.print(f"wrote {out or router_path}")


@router_app.command("decide")
def decide(
    router_path: Path = typer.Argument(..., metavar="ROUTER"),
    prompt: list[str] = typer.Argument(..., help="User turns, oldest first."),
    threshold: float = typer.Option(None, "--threshold", help="Override the stored threshold."),
) -> None:
    """Show which model a router picks for a prompt, and why."""
    from smallfirst.routing.learned import explain_choice, predict_conversations
    from smallfirst.routing.router_file import load_router_file

    try:
        router = load_router_file(router_path)
        pred = predict_conversations(router, [list(prompt)])[0]
    except (SmallfirstError, ValueError) as exc:
        fail(getattr(exc, "message", str(exc)))
    t = router.threshold if threshold is None else threshold
    choice = explain_choice(router, pred, t)
    console.print(router.models[choice.index])
    console.print(choice.reason, highlight=False, soft_wrap=True)
    console.print(
        "predicted: " + ", ".join(f"{m} {q:.2f}" for m, q in zip(router.models, pred, strict=True)),
        highlight=False,
        soft_wrap=True,
    )
