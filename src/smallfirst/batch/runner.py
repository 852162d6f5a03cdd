"""The local engine: asyncio workers over the input, results committed to the journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.batch.items import (
    Item,
    Rejected,
    format_of,
    is_openai_batch,
    position_noun,
    read_items,
    write_rows,
)
from smallfirst.batch.journal import InputLine, Journal, Outcome, journal_path
from smallfirst.batch.processors import Processed, Processor, input_text
from smallfirst.errors import (
    InvalidRequestError,
    PayloadTooLargeError,
    SmallfirstError,
    UpstreamError,
)

PERMANENT_UPSTREAM_STATUSES = (400, 413, 422)
"""Upstream answers that say the item itself is bad: retrying it would fail the same way."""


@dataclass(slots=True)
class BatchOptions:
    input: Path
    out: Path
    rejects: Path | None = None
    concurrency: int = 4
    max_usd: float | None = None
    max_input_chars: int = 100_000
    restart: bool = False
    allow_changed_input: bool = False
    """Resume on an input that changed since the journal started, matching lines by content."""

    def __post_init__(self) -> None:
        if not self.input.is_file():
            raise InvalidRequestError(f"input file {self.input} does not exist")
        format_of(self.input)
        format_of(self.out)

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.out.with_name(self.out.stem + ".rejects.jsonl")


@dataclass(slots=True)
class BatchSummary:
    total: int
    done: int = 0
    rejected: int = 0
    failed: int = 0
    resumed: int = 0
    """Items already in the journal from an earlier run, skipped this time."""
    retired: int = 0
    """Finished items whose line is no longer in a changed input (`allow_changed_input`)."""
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    elapsed_s: float = 0.0
    stopped: str | None = None
    failures: list[str] = field(default_factory=list)


ProgressFn = Callable[[BatchSummary], None]


def open_journal(options: BatchOptions, job: dict[str, Any]) -> tuple[Journal, int]:
    """The journal for OUT, checked against the input; also how many results were retired.

    Raises `InputChangedError` when the input changed since the journal was started (unless
    `allow_changed_input`), before anything is processed.
    """
    path = journal_path(options.out)
    if options.restart:
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
    journal = Journal(path, {**job, "input": str(options.input.resolve())})
    try:
        retired = journal.adopt_input(
            (InputLine(e.seq, e.line, e.id, e.digest) for e in read_items(options.input)),
            source=str(options.input),
            noun=position_noun(options.input),
            allow_changed=options.allow_changed_input,
        )
    except BaseException:
        journal.close()
        raise
    return journal, retired


def new_summary(journal: Journal, retired: int) -> BatchSummary:
    before = journal.totals()
    return BatchSummary(
        total=journal.line_count(),
        resumed=int(before["items"]),
        retired=retired,
        cost_usd=float(before["cost_usd"]),
    )


def is_permanent(exc: SmallfirstError) -> bool:
    """Bad input (ours or the upstream's 4xx verdict): rejected for good, never retried."""
    if isinstance(exc, InvalidRequestError | PayloadTooLargeError):
        return True
    return isinstance(exc, UpstreamError) and exc.upstream_status in PERMANENT_UPSTREAM_STATUSES


def output_row(item: Item, processed: Processed) -> dict[str, Any]:
    """The row written for a finished item; OpenAI Batch lines get OpenAI Batch output lines."""
    if is_openai_batch(item.data):
        return {
            "id": f"batch_req_{item.digest.hex()}",  # content, not position: a resume may move it
            "custom_id": item.id,
            "response": {
                "status_code": 200,
                "body": {
                    "object": "chat.completion",
                    "model": processed.model,
                    "choices": [batch_choice(processed.output)],
                    "usage": {
                        "prompt_tokens": processed.usage.input_tokens,
                        "completion_tokens": processed.usage.output_tokens,
                        "total_tokens": processed.usage.total_tokens,
                    },
                },
            },
            "error": None,
        }
    return {
        "id": item.id,
        **processed.output,
        "model": processed.model,
        "cost_usd": processed.cost_usd,
    }


def batch_choice(output: dict[str, Any]) -> dict[str, Any]:
    """A model item's answer as a chat completion's choice: its text, tool calls, finish reason
    and (when asked for) log-probabilities, as the gateway's answer carries them."""
    calls = output.get("tool_calls")
    text = output.get("output", output)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "finish_reason": output.get("finish_reason", "stop"), "message": message}
    if "logprobs" in output:
        choice["logprobs"] = output["logprobs"]
    return choice


def check_item(item: Item, options: BatchOptions) -> str | None:
    """Why an item cannot be processed, or None."""
    if is_openai_batch(item.data) or "messages" in item.data:
        return None
    try:
        text = input_text(item.data)
    except InvalidRequestError as exc:
        return exc.message
    if len(text) > options.max_input_chars:
        return f"input has {len(text)} characters, over the limit of {options.max_input_chars}"
    return None


def done(item: Item, processed: Processed) -> Outcome:
    usage = processed.usage
    return Outcome(
        item.seq,
        item.id,
        "done",
        output_row(item, processed),
        processed.cost_usd,
        usage.input_tokens,
        usage.output_tokens,
    )


def rejected(seq: int, item_id: str, reason: str, raw: Any) -> Outcome:
    return Outcome(seq, item_id, "rejected", {"id": item_id, "reason": reason, "input": raw})


async def run_batch(
    processor: Processor, options: BatchOptions, progress: ProgressFn | None = None
) -> BatchSummary:
    started = time.perf_counter()
    journal, retired = open_journal(options, processor.job)
    summary = new_summary(journal, retired)
    finished = journal.finished()
    queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=options.concurrency * 4)

    def keep(outcome: Outcome) -> None:
        # Committed at once (WAL, no fsync: ~50 us), so a kill redoes only in-flight items.
        journal.record([outcome])
        if outcome.status == "done":
            summary.done += 1
            summary.cost_usd += outcome.cost_usd
            summary.input_tokens += outcome.input_tokens
            summary.output_tokens += outcome.output_tokens
        else:
            summary.rejected += 1
        if progress:
            progress(summary)

    async def worker() -> None:
        while (item := await queue.get()) is not None:
            try:
                processed = await processor.process(item.data)
            except SmallfirstError as exc:
                if is_permanent(exc):
                    keep(rejected(item.seq, item.id, exc.message, item.data))
                else:  # transient (5xx, timeout, 429): not journaled, a rerun retries it
                    fail(item, exc.message)
            except Exception as exc:  # one item's crash must not stop the run (or hang it)
                fail(item, f"{type(exc).__name__}: {exc}")
            else:
                keep(done(item, processed))

    def fail(item: Item, message: str) -> None:
        summary.failed += 1
        summary.failures.append(f"{item.id}: {message}")
        if progress:
            progress(summary)

    workers = [asyncio.create_task(worker()) for _ in range(options.concurrency)]
    try:
        for entry in read_items(options.input):
            if entry.seq in finished:
                continue
            if isinstance(entry, Rejected):
                keep(rejected(entry.seq, entry.id, entry.reason, entry.raw))
                continue
            if (reason := check_item(entry, options)) is not None:
                keep(rejected(entry.seq, entry.id, reason, entry.data))
                continue
            if options.max_usd is not None and summary.cost_usd >= options.max_usd:
                summary.stopped = f"reached the $ cap of {options.max_usd}"
                break
            await queue.put(entry)
    finally:
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers, return_exceptions=True)
        export(journal, options)
        journal.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def export(journal: Journal, options: BatchOptions) -> None:
    """Write the output and rejects files from the journal, in input order."""
    write_rows(options.out, journal.rows("done"))
    if journal.totals()["rejected"]:
        write_rows(options.rejects_path, journal.rows("rejected"))
    else:  # e.g. the rejected lines were removed from a changed input
        options.rejects_path.unlink(missing_ok=True)
