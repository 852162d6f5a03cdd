"""Prometheus metrics, fed from the same `LedgerEntry` the ledger stores (one source of truth).

Each app gets its own CollectorRegistry so several gateways (tests, benchmarks) can live in
one process. The ledger writer's own counts (rows waiting in memory, rows lost) are read from
the writer at each scrape, so they cannot drift from what it did.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.writer import LedgerWriter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "tier")
        self.requests = Counter(
            "smallfirst_requests",
            "Requests by served model, tier, endpoint and HTTP status.",
            (*labels, "endpoint", "status"),
            registry=self.registry,
        )
        self.tokens = Counter(
            "smallfirst_tokens",
            "Tokens by direction.",
            (*labels, "direction"),
            registry=self.registry,
        )
        self.cost = Counter(
            "smallfirst_cost_usd", "US dollars spent.", labels, registry=self.registry
        )
        self.baseline_cost = Counter(
            "smallfirst_baseline_cost_usd",
            "US dollars the baseline model would have cost for the same tokens.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "smallfirst_request_latency_seconds",
            "Time to the last byte.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "smallfirst_ttft_seconds",
            "Time to the first token (streams).",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.ledger = LedgerCollector()
        self.registry.register(self.ledger)

    def watch_ledger(self, writer: LedgerWriter) -> None:
        self.ledger.writer = writer

    def observe(self, entry: LedgerEntry) -> None:
        model, tier = entry.model or "none", entry.tier or "none"
        self.requests.labels(model, tier, entry.endpoint, str(entry.status)).inc()
        if entry.input_tokens:
            self.tokens.labels(model, tier, "input").inc(entry.input_tokens)
        if entry.output_tokens:
            self.tokens.labels(model, tier, "output").inc(entry.output_tokens)
        if entry.cost_usd:
            self.cost.labels(model, tier).inc(entry.cost_usd)
        if entry.baseline_cost_usd:
            self.baseline_cost.labels(model, tier).inc(entry.baseline_cost_usd)
        if entry.latency_ms is not None:
            self.latency.labels(model, tier).observe(entry.latency_ms / 1000)
        if entry.ttft_ms is not None:
            self.ttft.labels(model, tier).observe(entry.ttft_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LedgerCollector(Collector):
    """The ledger writer's counts, read at scrape time (nothing until the ledger is open)."""

    def __init__(self) -> None:
        self.writer: LedgerWriter | None = None

    def collect(self) -> Iterator[Metric]:
        writer = self.writer
        if writer is None:
            return
        yield GaugeMetricFamily(
            "smallfirst_ledger_rows_pending",
            "Ledger rows accepted and held in memory, not yet stored (grows while the "
            "database is unavailable).",
            value=writer.pending,
        )
        yield CounterMetricFamily(
            "smallfirst_ledger_rows_written",
            "Ledger rows stored in the database.",
            value=writer.written,
        )
        yield CounterMetricFamily(
            "smallfirst_ledger_rows_dropped",
            "Ledger rows lost: the in-memory buffer overflowed during a database outage, or "
            "the gateway stopped while the database was still unavailable.",
            value=writer.dropped,
        )
        yield CounterMetricFamily(
            "smallfirst_ledger_rows_refused",
            "Ledger rows the database refused as invalid (dropped alone, the rest stored).",
            value=writer.failed,
        )
