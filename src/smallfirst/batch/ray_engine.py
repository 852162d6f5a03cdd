"""`--engine ray`: the same job on Ray Data, one model replica per actor.

The driver reads the input, skips what the journal already holds, and hands the rest to
`map_batches` over a pool of `ItemWorker` actors; results come back to the driver, which
commits them to the same journal as the local engine, so resuming and exactly-once output work
the same way on a cluster. Given a ledger, an actor builds each item's rows as the local engine
does (`batch.ledger_rows`) into a `RowBuffer` and returns them with the item's result; the
driver records them, so no actor writes to the ledger and no row of a returned item is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from smallfirst.batch.items import Item, Rejected, read_items
from smallfirst.batch.journal import Outcome
from smallfirst.batch.runner import (
    BatchOptions,
    BatchSummary,
    ProgressFn,
    check_item,
    done,
    export,
    is_permanent,
    new_summary,
    open_journal,
    rejected,
)
from smallfirst.batch.spec import WorkSpec
from smallfirst.errors import ModelLoadError, SmallfirstError
from smallfirst.ledger import LedgerEntry
from smallfirst.ledger.sink import RowBuffer, RowSink

ROUND = 512
"""Items handed to the cluster at a time."""


class ItemWorker:
    """A Ray actor: builds the model/task once, then processes batches of items. With
    `record`, each item's ledger rows come back with it (column `rows`, JSON)."""

    def __init__(self, spec: dict[str, Any], record: bool = False) -> None:
        self.rows = RowBuffer() if record else None
        self.processor = WorkSpec(**spec).build(ledger=self.rows)
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        columns = ("seq", "id", "data", "line", "digest")
        rows = [
            self.loop.run_until_complete(self._one(*values))
            for values in zip(*(batch[key] for key in columns), strict=True)
        ]
        return {key: [row[key] for row in rows] for key in ("seq", "status", "payload", "rows")}

    async def _one(
        self, seq: int, item_id: str, raw: str, line: int, digest: str
    ) -> dict[str, Any]:
        item = Item(int(seq), str(item_id), json.loads(raw), int(line), bytes.fromhex(digest))
        result = await self._process(item)
        rows = self.rows.take() if self.rows is not None else []
        return {**result, "rows": json.dumps([entry.as_row() for entry in rows])}

    async def _process(self, item: Item) -> dict[str, Any]:
        try:
            processed = await self.processor.process(item.data)
        except SmallfirstError as exc:
            if not is_permanent(exc):  # transient: not journaled, a rerun retries it
                return _failed(item, exc.message)
            outcome = rejected(item.seq, item.id, exc.message, item.data)
        except Exception as exc:  # one item's crash must not stop the run
            return _failed(item, f"{type(exc).__name__}: {exc}")
        else:
            outcome = done(item, processed)
        payload = json.dumps(
            [
                outcome.item_id,
                outcome.result,
                outcome.cost_usd,
                outcome.input_tokens,
                outcome.output_tokens,
            ]
        )
        return {"seq": item.seq, "status": outcome.status, "payload": payload}


def _failed(item: Item, message: str) -> dict[str, Any]:
    return {"seq": item.seq, "status": "failed", "payload": f"{item.id}: {message}"}


def run_batch_ray(
    spec: WorkSpec,
    options: BatchOptions,
    replicas: int = 1,
    batch_size: int = 8,
    progress: ProgressFn | None = None,
    ledger: RowSink | None = None,
) -> BatchSummary:
    """The job on Ray; with a `ledger`, every processed item's rows are recorded there."""
    try:
        import ray
    except ImportError:
        raise ModelLoadError("--engine ray needs Ray: pip install 'smallfirst[ray]'") from None
    job = spec.build().job
    started = time.perf_counter()
    journal, retired = open_journal(options, job)
    summary = new_summary(journal, retired)
    finished = journal.finished()
    todo, early = _split(options, finished)
    journal.record(early)
    summary.rejected += len(early)
    if todo and not ray.is_initialized():
        ray.init(num_cpus=max(2, replicas), include_dashboard=False, log_to_driver=False)
    for start in range(0, len(todo), ROUND):  # the $ cap is checked between rounds
        if options.max_usd is not None and summary.cost_usd >= options.max_usd:
            summary.stopped = f"reached the $ cap of {options.max_usd}"
            break
        dataset = ray.data.from_items(todo[start : start + ROUND]).map_batches(
            ItemWorker,
            fn_constructor_kwargs={"spec": spec.to_dict(), "record": ledger is not None},
            batch_size=batch_size,
            concurrency=replicas,
            num_cpus=1,
        )
        for batch in dataset.iter_batches(batch_size=batch_size, batch_format="pandas"):
            journal.record(_collect(batch, summary, ledger))
            if progress:
                progress(summary)
    export(journal, options)
    journal.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _split(options: BatchOptions, finished: set[int]) -> tuple[list[dict[str, Any]], list[Outcome]]:
    """Items to send to the cluster, and rows rejected on the driver already."""
    todo: list[dict[str, Any]] = []
    early: list[Outcome] = []
    for entry in read_items(options.input):
        if entry.seq in finished:
            continue
        if isinstance(entry, Rejected):
            early.append(rejected(entry.seq, entry.id, entry.reason, entry.raw))
        elif (reason := check_item(entry, options)) is not None:
            early.append(rejected(entry.seq, entry.id, reason, entry.data))
        else:
            todo.append(
                {
                    "seq": entry.seq,
                    "id": entry.id,
                    "data": json.dumps(entry.data),
                    "line": entry.line,
                    "digest": entry.digest.hex(),
                }
            )
    return todo, early


def _collect(batch: Any, summary: BatchSummary, ledger: RowSink | None) -> list[Outcome]:
    """The batch's outcomes to journal; its ledger rows (failed items' too) go to `ledger`."""
    outcomes = []
    columns = (batch[key] for key in ("seq", "status", "payload", "rows"))
    for seq, status, payload, rows in zip(*columns, strict=True):
        if ledger is not None:
            for row in json.loads(rows):
                ledger.record(LedgerEntry(**row))
        if status == "failed":
            summary.failed += 1
            summary.failures.append(str(payload))
            continue
        item_id, result, cost, tokens_in, tokens_out = json.loads(payload)
        outcomes.append(Outcome(int(seq), item_id, status, result, cost, tokens_in, tokens_out))
        if status == "done":
            summary.done += 1
            summary.cost_usd += cost
            summary.input_tokens += tokens_in
            summary.output_tokens += tokens_out
        else:
            summary.rejected += 1
    return outcomes
