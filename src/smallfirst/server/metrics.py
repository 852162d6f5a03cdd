"""Prometheus metrics, fed from the same `LedgerEntry` the ledger stores (one source of truth).

Each app gets its own CollectorRegistry so several gateways (tests, benchmarks) can live in
one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from smallfirst.ledger.entry import LedgerEntry

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
