"""A batch item in the ledger, as the gateway writes a request: one request row (endpoint
`batch`) with what the item spent, and one hop row per retry, fallback, rung and check the
failover policy or a cascade made on its way, whether the item was answered or not. So
`smallfirst report` and the dashboard count batch traffic, and a failed-over item shows why.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from smallfirst.errors import SmallfirstError
from smallfirst.ledger import LedgerEntry
from smallfirst.ledger.hop_rows import hop_entry
from smallfirst.ledger.sink import RowSink
from smallfirst.models.registry import Registry
from smallfirst.routing.hops import HopLog
from smallfirst.routing.resilience import current_scope, failover_scope
from smallfirst.tasks.output import TaskOutputError
from smallfirst.types import Usage

if TYPE_CHECKING:
    from smallfirst.batch.processors import Processed

ENDPOINT = "batch"

Work = Callable[[HopLog], Awaitable["Processed"]]
"""One item's work, given the log its hops go to (a cascade takes it as its `log`)."""


async def recorded(
    ledger: RowSink | None, registry: Registry, requested: str, work: Work
) -> Processed:
    """`work(log)` inside a failover scope on a new `log`, then the item's rows. Without a
    ledger, the work alone: its hops go to the failover scope a caller opened, if any."""
    if ledger is None:
        scope = current_scope()
        return await work(scope.log if scope is not None else HopLog())
    log = HopLog()
    entry = LedgerEntry(request_id=log.request_id, endpoint=ENDPOINT, requested_model=requested)
    started = time.perf_counter()
    try:
        with failover_scope(log):
            processed = await work(log)
    except Exception as exc:
        _failed(entry, registry, exc)
        _record(ledger, entry, log, started)
        raise
    entry.model = processed.model
    _charge(entry, registry, processed.usage, processed.cost_usd)
    _record(ledger, entry, log, started)
    return processed


def _failed(entry: LedgerEntry, registry: Registry, exc: Exception) -> None:
    if isinstance(exc, SmallfirstError):
        entry.status, entry.error = exc.status, f"{exc.error_type}: {exc.message}"
    else:
        entry.status, entry.error = 500, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TaskOutputError) and exc.tries:  # invalid output was billed all the same
        entry.model = exc.tries[-1].model
        _charge(entry, registry, exc.usage, sum(attempt.cost_usd for attempt in exc.tries))


def _charge(entry: LedgerEntry, registry: Registry, usage: Usage, cost_usd: float) -> None:
    if entry.model in registry.entries:
        entry.tier = registry.get(entry.model).tier
    entry.input_tokens, entry.output_tokens = usage.input_tokens, usage.output_tokens
    entry.cost_usd = cost_usd
    baseline = registry.get(registry.baseline_model)
    entry.baseline_model = baseline.name
    entry.baseline_cost_usd = baseline.price.cost(usage)


def _record(ledger: RowSink, entry: LedgerEntry, log: HopLog, started: float) -> None:
    """The request row, and its hops when it took more than one step (a lone failed attempt
    is already the request row's error), as `server.passthrough.record_retries` does."""
    entry.latency_ms = (time.perf_counter() - started) * 1000
    ledger.record(entry)
    if len(log.hops) > 1:
        for hop in log.hops:
            ledger.record(hop_entry(entry, hop))
