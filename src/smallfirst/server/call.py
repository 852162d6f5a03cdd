"""One request's passage through the gateway, from arrival to its ledger row.

The `LedgerEntry` is filled in as the request goes (key, route, tokens) and finished exactly
once, on success, failure or client disconnect: that one place records the row, feeds the
metrics and settles the key's reservation, so no path can forget one of them.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from typing import TYPE_CHECKING

from smallfirst.errors import SmallfirstError
from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.keys import ApiKey
from smallfirst.models.registry import ModelEntry
from smallfirst.routing.base import RouteDecision
from smallfirst.server import admission
from smallfirst.server.admission import Estimate
from smallfirst.server.limits import Reservation
from smallfirst.types import ChatRequest, CompletionRequest, ToolCall, Usage

if TYPE_CHECKING:
    from smallfirst.server.gateway import Gateway

CLIENT_CLOSED = 499


class _RequestIds:
    """A random per-process prefix plus a counter: unique, and no system call per request.
    The prefix is redrawn in a forked child so workers never share ids."""

    def __init__(self) -> None:
        self.pid = -1
        self.prefix = ""
        self.counter = itertools.count(1)

    def next(self) -> str:
        if self.pid != os.getpid():
            self.pid, self.prefix = os.getpid(), f"req-{secrets.token_hex(6)}"
            self.counter = itertools.count(1)
        return f"{self.prefix}{next(self.counter):012x}"


_IDS = _RequestIds()


def new_request_id() -> str:
    return _IDS.next()


def estimate_tokens(text_chars: int) -> int:
    """A prompt's tokens before any tokenizer runs (~4 characters a token), for admission."""
    return text_chars // 4 + 1


def ascii_header(value: str, limit: int = 200) -> str:
    return value.encode("ascii", "replace").decode("ascii")[:limit].replace("\n", " ")


class Call:
    __slots__ = (
        "answer",
        "answer_tool_calls",
        "entry",
        "estimate",
        "finished",
        "gateway",
        "key",
        "local_only",
        "model",
        "request",
        "reservation",
        "spent_usd",
        "started",
    )

    def __init__(self, gateway: Gateway, endpoint: str) -> None:
        self.gateway = gateway
        self.entry = LedgerEntry(request_id=new_request_id(), endpoint=endpoint)
        self.started = time.perf_counter()
        self.key: ApiKey | None = None
        self.model: ModelEntry | None = None
        self.reservation: Reservation | None = None
        self.estimate: Estimate | None = None
        """The request's worst case, priced at admission (server/admission.py)."""
        self.spent_usd: float | None = None
        """What the request spent when it is more than one call (a cascade's hops)."""
        self.local_only = False
        """The router found personal data: only models declared `local` may answer it."""
        self.request: ChatRequest | CompletionRequest | None = None
        """What was asked, once parsed (learning compares answers to it after the fact)."""
        self.answer: str | None = None
        self.answer_tool_calls: list[ToolCall] | None = None
        """What the client received, on success (learning keeps the large model's answers)."""
        self.finished = False

    @property
    def request_id(self) -> str:
        return self.entry.request_id

    def authenticated(self, key: ApiKey | None) -> None:
        self.key = key
        if key is not None:
            self.entry.key_id, self.entry.key_name = key.id, key.name

    def routed(self, model: ModelEntry, decision: RouteDecision | None) -> None:
        self.model = model
        self.entry.model, self.entry.tier = model.name, model.tier
        if decision is not None:
            self.local_only = bool(decision.details.get("local_only"))
            self.entry.router = decision.router
            self.entry.route_reason = decision.reason
            self.entry.route_score = decision.score

    async def admit(
        self,
        prompt_chars: int = 0,
        max_tokens: int | None = None,
        *,
        estimate: Estimate | None = None,
    ) -> None:
        """Reserve rate-limit slots and budget for this request (429 when refused).

        `estimate` is the whole request's worst case (chat, completions and cascades build it
        with `server/admission.py`); without one the prompt is `prompt_chars` of plain text."""
        if estimate is None and self.model is not None:
            estimate = admission.for_model(self.model, estimate_tokens(prompt_chars), max_tokens)
        self.estimate = estimate
        if self.key is None or estimate is None:
            return
        self.reservation = await self.gateway.limiter.reserve(
            self.key, estimate.tokens, estimate.cost_usd
        )

    def fits(self, model: ModelEntry) -> bool:
        """May a fallback run on `model` within what this request was admitted for? A key's
        reservation is made once, before any byte; a fallback whose worst case exceeds it
        would break the budget promise (or need a second admission that could refuse the
        request halfway), so it is not tried. Without a reservation any model fits. A request
        with personal data falls back only to `local` models."""
        if self.local_only and not model.capabilities.local:
            return False
        estimate = self.estimate
        if self.reservation is None or estimate is None:
            return True
        worst = Usage(estimate.prompt_tokens, estimate.output_tokens)
        return model.price.cost(worst) <= estimate.cost_usd

    def first_token(self) -> None:
        if self.entry.ttft_ms is None:
            self.entry.ttft_ms = (time.perf_counter() - self.started) * 1000

    def succeed(
        self, usage: Usage, response: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> None:
        self._charge(usage)
        self.answer, self.answer_tool_calls = response, tool_calls
        if self.model is not None and self.entry.endpoint != "embeddings":
            baseline = self.gateway.baseline
            self.entry.baseline_model = baseline.name
            self.entry.baseline_cost_usd = baseline.price.cost(usage)
        if response is not None and self.gateway.log_prompts:
            self.entry.response = response
        self._finish(200, None)

    def fail(self, exc: BaseException, delivered: Usage | None = None) -> None:
        """The request failed; `delivered` is what it is charged for all the same: what a
        stream had already relayed to the client, or the calls a task made before its output
        failed its check (with `spent_usd` set, that is the charge)."""
        if delivered is not None:
            self._charge(delivered)
        if isinstance(exc, SmallfirstError):
            detail = getattr(exc, "detail", None)  # for the ledger only, never the client
            suffix = f" ({detail})" if detail else ""
            self._finish(exc.status, f"{exc.error_type}: {exc.message}{suffix}")
        else:
            self._finish(500, f"{type(exc).__name__}: {exc}")

    def disconnected(self, delivered: Usage | None = None) -> None:
        """The client left mid-answer: it is charged for `delivered` (what it was sent, see
        `admission.delivered_usage`), and the charge settles against its key."""
        if delivered is not None:
            self._charge(delivered)
        self._finish(CLIENT_CLOSED, "client_closed: the client went away before the end")

    def _charge(self, usage: Usage) -> None:
        """Tokens and $ of what the client received, answered or not; the whole spend when
        that is known instead (a cascade's hops, which ran before anything was sent)."""
        self.entry.input_tokens = usage.input_tokens
        self.entry.output_tokens = usage.output_tokens
        self.entry.cached_input_tokens = usage.cached_input_tokens
        self.entry.cache_write_tokens = usage.cache_write_tokens
        if self.model is not None:
            self.entry.cost_usd = (
                self.model.price.cost(usage) if self.spent_usd is None else self.spent_usd
            )

    def _finish(self, status: int, error: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        entry = self.entry
        entry.status, entry.error = status, error
        entry.latency_ms = (time.perf_counter() - self.started) * 1000
        self.gateway.record(entry)  # first: nothing that fails afterwards can lose the row
        if self.reservation is not None:
            tokens = max(0, entry.input_tokens + entry.output_tokens)
            cost = entry.cost_usd if entry.cost_usd > 0 else 0.0  # never a refund (or a NaN)
            self.gateway.limiter.settle(self.reservation, tokens, cost)
        if self.gateway.learning is not None:
            self.gateway.learning.finished(self)

    def headers(self) -> dict[str, str]:
        headers = {"x-smallfirst-request-id": self.request_id}
        entry = self.entry
        if entry.model is not None:
            headers["x-smallfirst-model"] = ascii_header(entry.model)
            headers["x-smallfirst-tier"] = entry.tier or ""
            headers["x-smallfirst-route"] = ascii_header(entry.router or "direct")
        if entry.route_reason:
            headers["x-smallfirst-route-reason"] = ascii_header(entry.route_reason)
        if self.finished and entry.status == 200:
            headers["x-smallfirst-cost-usd"] = f"{entry.cost_usd:.8f}"
            headers["x-smallfirst-baseline-cost-usd"] = f"{entry.baseline_cost_usd:.8f}"
        return headers
