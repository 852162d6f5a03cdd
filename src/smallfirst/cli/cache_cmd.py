"""`smallfirst cache clear|calibrate`: empty the response cache; set a semantic threshold."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from sqlalchemy import or_, select

from smallfirst.cache.ambiguity import MARGINS
from smallfirst.cache.calibrate import Message, Pair, calibrate_messages, calibrate_pairs, save
from smallfirst.cache.policy import route_config
from smallfirst.cache.stores import RedisStore, SqlStore
from smallfirst.cache.thresholds import Evidence, ThresholdStore
from smallfirst.cli.common import fail
from smallfirst.config import CacheRouteConfig, load_config
from smallfirst.errors import SmallfirstError
from smallfirst.ledger.store import LedgerStore
from smallfirst.routing.thresholds import Calibration

cache_app = typer.Typer(help="The response cache: clear entries, calibrate semantic thresholds.")
LEDGER_OPTION = typer.Option(
    None, "--ledger", help="Ledger database URL (default: server.ledger_url or the state dir)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def clear_cmd(
    task: str = typer.Option(None, "--task", help="Only this route's entries (its `model`)."),
    key: str = typer.Option(None, "--key", help="Only this API key's entries (id or name)."),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Remove cached answers (all, a route's, a key's, or both); Redis too when configured."""
    try:
        config = load_config()
        store = LedgerStore(ledger_url or config.server.ledger_url)
        try:
            scope = None if key is None else f"key:{_key_id(store, key)}"
            removed = SqlStore(store.engine).clear(task, scope)
            if config.server.redis_url:
                removed += asyncio.run(_clear_redis(config.server.redis_url, task, scope))
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
    typer.echo(f"removed {removed} cached answer(s)")


async def _clear_redis(url: str, task: str | None, scope: str | None) -> int:
    redis = RedisStore(url, timeout_s=5.0)
    try:
        return await redis.clear(task, scope)
    finally:
        await redis.aclose()


def _key_id(store: LedgerStore, key: str) -> str:
    keys = store.api_keys
    query = select(keys.c.id).where(or_(keys.c.id == key, keys.c.name == key))
    with store.engine.connect() as conn:
        found = conn.execute(query).scalars().first()
    if found is None:
        fail(f"no API key with id or name {key!r}")
    return str(found)


@cache_app.command("calibrate")
def calibrate_cmd(
    pairs_file: Path = typer.Argument(
        ...,
        help='JSON lines: pairs {"a": turn, "b": turn, "same": true|false}, or a labelled '
        'stream {"text": turn, "answer": its right answer} in arrival order.',
    ),
    task: str = typer.Option(..., "--task", help="The route (its `model`) the threshold is for."),
    target: float = typer.Option(
        None, "--target", help="Precision the hits must reach (default: the route's, 0.99)."
    ),
    ledger_url: str = LEDGER_OPTION,
) -> None:
    """Set the route's semantic threshold so hits reach the target precision on the data (a
    labelled stream also sets its ambiguity margin)."""
    try:
        config = load_config()
        settings = route_config(config.cache, task) or CacheRouteConfig()
        target = target or settings.target_precision
        rows = _read_rows(pairs_file)
        found, evidence, margin, lookups = _calibrate(
            rows, target, settings, config.cache.embedder_path
        )
        store = LedgerStore(ledger_url or config.server.ledger_url)
        try:
            kept = save(ThresholdStore(store.engine), task, found, evidence, margin)
        finally:
            store.close()
    except SmallfirstError as exc:
        fail(exc.message)
    what = "pairs" if isinstance(rows[0], Pair) else "lookups"
    if not kept:
        fail(
            f"no threshold reaches precision {target} on {lookups} {what}: the semantic cache "
            f"for {task!r} stays off (more data, or a lower --target)"
        )
    bound = "" if found.lower_bound is None else f" (lower bound {found.lower_bound:.3f})"
    check = "" if margin is None else f", ambiguity margin {margin:g}"
    typer.echo(
        f"{task}: threshold {found.threshold:.4f}{check}; precision {found.kept_accuracy:.3f}"
        f"{bound} on {found.kept_n} of {lookups} {what} ({found.kept_n / lookups:.1%} would hit)"
    )


def _calibrate(
    rows: list[Pair] | list[Message],
    target: float,
    settings: CacheRouteConfig,
    embedder_path: str | None,
) -> tuple[Calibration, Evidence, float | None, int]:
    """The threshold, its evidence, its ambiguity margin and how many lookups it was found
    on: pairs as they are; a stream replayed with the route's margin, or each of `MARGINS`."""
    pairs = [r for r in rows if isinstance(r, Pair)]
    if pairs:
        found, evidence = calibrate_pairs(pairs, target, settings.template, None, embedder_path)
        return found, evidence, None, found.n
    messages = [r for r in rows if isinstance(r, Message)]
    fixed = settings.ambiguity_margin
    margins = (fixed,) if fixed is not None else MARGINS
    stream = calibrate_messages(messages, target, settings.template, None, embedder_path, margins)
    return stream.calibration, stream.evidence, stream.margin, stream.lookups


def _read_rows(path: Path) -> list[Pair] | list[Message]:
    """Pairs or a labelled stream, whichever the file's first line is (all alike)."""
    pairs: list[Pair] = []
    messages: list[Message] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not pairs and (messages or "answer" in row):
                messages.append(Message(str(row["text"]), str(row["answer"])))
            else:
                pairs.append(Pair(str(row["a"]), str(row["b"]), bool(row["same"])))
        except (ValueError, KeyError, TypeError) as exc:
            kind = "a message needs text and answer" if messages else "a pair needs a, b and same"
            fail(f"{path}:{number}: {kind}: {exc}")
    if not (pairs or messages):
        fail(f"{path} has no pairs or messages")
    return pairs or messages
