"""The cache in the gateway's chat path: `lookup` before routing, `Lookup.keep` after.

A hit is answered here, in the shape asked for (JSON, or an SSE replay), and is a ledger row
with outcome `cache`, $0 and the baseline cost of the answer it replayed (what it saved).
Everything else gets `x-smallfirst-cache: miss` or `bypass` and, when it succeeds and may be
stored, its answer kept after the response went out (pass-through: the body the client
received; streams: the collected answer).
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.responses import Response, StreamingResponse

from smallfirst.cache.ambiguity import NEIGHBOURS, ambiguous, answer_signature
from smallfirst.cache.audit import audit_hit
from smallfirst.cache.entry import CachedAnswer
from smallfirst.cache.keys import exact_key, semantic_group
from smallfirst.cache.policy import Decision, decide
from smallfirst.cache.semantic import SemanticIndex, last_user_text, static_embedder
from smallfirst.cache.stores import CacheStore, RedisStore, SqlStore, safe_get, safe_put
from smallfirst.cache.thresholds import TaskThreshold, ThresholdStore
from smallfirst.config import CacheRouteConfig
from smallfirst.server.call import Call
from smallfirst.server.streaming import SSE_HEADERS
from smallfirst.target import AnyRequest, ModelTarget, Target
from smallfirst.types import Usage
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.render import usage_json
from smallfirst.wire.sse import SseDecoder

if TYPE_CHECKING:
    from smallfirst.models.registry import ModelEntry
    from smallfirst.server.gateway import Gateway

log = logging.getLogger("smallfirst.cache")
HEADER = "x-smallfirst-cache"
THRESHOLD_TTL_S = 5.0
"""How long a replica keeps a task's threshold before reading it again (audits raise it)."""
GONE_RETRIES = 3
"""Nearest entries tried per semantic lookup when the store no longer has the nearest."""


@dataclass(slots=True, frozen=True)
class SemanticRule:
    """When a semantic lookup hits: the nearest entry at or above `threshold` and, with a
    `margin`, no entry within it of the nearest holding another answer (cache/ambiguity.py)."""

    threshold: float
    margin: float | None = None


class ResponseCache:
    """One gateway's cache: its store, semantic index and thresholds."""

    def __init__(
        self, store: CacheStore, thresholds: ThresholdStore, embedder_path: str | None
    ) -> None:
        self.store = store
        self.thresholds = thresholds
        self.embedder_path = embedder_path
        self._index: SemanticIndex | None = None
        self._embedder = "cold"
        """`cold`, `loading` (in the background), `ready` or `broken`."""
        self._known: dict[str, tuple[float, TaskThreshold | None]] = {}
        self._told: set[str] = set()
        self._local: dict[str, tuple[ModelEntry, bool]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        """Stores and audits under way (off the response path)."""

    @property
    def index(self) -> SemanticIndex:
        if self._index is None:
            self._index = SemanticIndex(static_embedder(self.embedder_path))
        return self._index

    async def vector(self, text: str) -> np.ndarray | None:
        """The text's embedding; None while the embedder loads (a first use may distill
        MiniLM, which takes minutes: never on a request) or when it cannot load (logged)."""
        if self._embedder != "ready":
            if self._embedder == "cold":
                self._embedder = "loading"
                self.spawn(self._load_embedder())
            return None
        try:
            return await asyncio.to_thread(self.index.embed, text)
        except Exception as exc:  # a failing embedder is only no semantic hit
            log.warning("response cache: embedding failed, no semantic lookup: %s", exc)
            return None

    async def _load_embedder(self) -> None:
        try:
            await asyncio.to_thread(self.index.embed, "warm up")
        except Exception as exc:
            self._embedder = "broken"
            log.warning("response cache: the semantic cache is off, its embedder failed: %s", exc)
        else:
            self._embedder = "ready"

    @property
    def idle(self) -> bool:
        return not self.tasks

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def rule(self, task: str, settings: CacheRouteConfig) -> SemanticRule | None:
        """The route's configured threshold, else the task's calibrated one (with its margin);
        a margin in the config overrides the calibrated one. None: no semantic hits."""
        if settings.threshold is not None:
            return SemanticRule(settings.threshold, settings.ambiguity_margin)
        loop = asyncio.get_running_loop()
        known = self._known.get(task)
        if known is None or loop.time() - known[0] > THRESHOLD_TTL_S:
            found = None
            try:
                found = await asyncio.to_thread(self.thresholds.load, task)
            except Exception as exc:  # unreadable: no semantic hits until it reads again
                log.warning("response cache threshold for %r unreadable: %s", task, exc)
            known = self._known[task] = (loop.time(), found)
        if known[1] is None and task not in self._told:
            self._told.add(task)
            log.warning(
                "semantic cache for %r is off: no threshold yet (run `smallfirst cache "
                "calibrate --task %s PAIRS` or set cache.routes.%s.threshold)",
                task,
                task,
                task,
            )
        stored = known[1]
        if stored is None:
            return None
        margin = settings.ambiguity_margin
        return SemanticRule(stored.threshold, stored.margin if margin is None else margin)

    def forget_threshold(self, task: str) -> None:
        self._known.pop(task, None)

    def is_local(self, entry: ModelEntry) -> bool:
        """Whether the model is `local`, remembered per entry: its capabilities are merged
        afresh on every read (~70 us measured, a fair share of an exact hit's budget)."""
        known = self._local.get(entry.name)
        if known is None or known[0] is not entry:
            known = self._local[entry.name] = (entry, entry.capabilities.local)
        return known[1]


_CACHES: weakref.WeakKeyDictionary[Gateway, ResponseCache] = weakref.WeakKeyDictionary()


def cache_of(gateway: Gateway) -> ResponseCache:
    """The gateway's cache, made on its first request (the ledger is open by then)."""
    found = _CACHES.get(gateway)
    if found is None:
        config = gateway.config
        assert gateway.ledger is not None, "the gateway has not started"
        engine = gateway.ledger.store.engine
        redis_url = config.server.redis_url
        store: CacheStore = RedisStore(redis_url) if redis_url else SqlStore(engine)
        thresholds = ThresholdStore(engine)
        found = _CACHES[gateway] = ResponseCache(store, thresholds, config.cache.embedder_path)
    return found


@dataclass(slots=True)
class _Semantic:
    group: str
    vector: np.ndarray
    text: str


class Lookup:
    """A request's cache outcome; `response` is set on a hit."""

    def __init__(self, call: Call, decision: Decision) -> None:
        self.call = call
        self.decision = decision
        self.response: Response | None = None
        self.cache: ResponseCache | None = None
        self.key = ""
        self.scope = ""
        self.route = ""
        self.semantic: _Semantic | None = None

    def keep(self, response: Response) -> Response:
        """The response, marked miss or bypass; its answer stored once it succeeded."""
        if self.decision.route is None:
            return response
        response.headers[HEADER] = "miss" if self.decision.read else "bypass"
        if not self.decision.write or self.cache is None:
            return response
        if isinstance(response, StreamingResponse):
            response.body_iterator = self._collect(response.body_iterator)
        elif self._succeeded():
            try:
                body = orjson.loads(response.body)
                answer = CachedAnswer.from_body(self._model(), body, self._prompt())
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                log.warning("response cache: answer not kept, unreadable: %s", exc)
                return response
            self.cache.spawn(self._store(answer))
        return response

    def _succeeded(self) -> bool:
        return self.call.finished and self.call.entry.status == 200

    def _model(self) -> str:
        return self.call.entry.model or self.route

    def _prompt(self) -> str | None:
        return None if self.semantic is None else self.semantic.text

    async def _collect(self, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
        decoder, collector = SseDecoder(), StreamCollector()
        readable = True
        async for chunk in chunks:
            yield chunk
            if readable:
                try:
                    raw = chunk if isinstance(chunk, bytes) else str(chunk).encode()
                    for event in decoder.feed(raw):
                        if event.data is not None:
                            collector.add_data(event.data)
                except Exception as exc:  # a stream we cannot read is only not kept
                    log.warning("response cache: stream not kept, unreadable: %s", exc)
                    readable = False
        if readable and self._succeeded() and collector.finish_reason and collector.error is None:
            usage = collector.raw_usage
            if not isinstance(usage, dict):  # the client did not ask for it: the call's count
                entry = self.call.entry
                usage = usage_json(Usage(entry.input_tokens, entry.output_tokens))
            answer = CachedAnswer(
                model=self._model(),
                text=collector.text,
                finish_reason=collector.finish_reason,
                usage=dict(usage),
                tool_calls=[c.to_openai() for c in collector.tool_calls.calls() or []],
                prompt=self._prompt(),
            )
            assert self.cache is not None
            self.cache.spawn(self._store(answer))

    async def _store(self, answer: CachedAnswer) -> None:
        settings = self.decision.route
        assert settings is not None and self.cache is not None
        scope = self._write_scope()
        key = self.key if scope == self.scope else self.key.replace(self.scope, scope, 1)
        await safe_put(
            self.cache.store, key, scope, self.route, answer, settings.ttl_s, settings.max_entries
        )
        if self.semantic is not None and scope == self.scope:
            semantic = self.semantic
            signature = answer_signature(answer.text, answer.tool_calls)
            self.cache.index.add(
                semantic.group, semantic.vector, key, signature, settings.ttl_s,
                settings.max_entries,
            )  # fmt: skip

    def _write_scope(self) -> str:
        """Shared only when the route opted in and nothing about the answer is private:
        a request that a `local` model answered, or that had personal data, stays the key's."""
        call = self.call
        assert self.cache is not None
        private = call.local_only or (call.model is not None and self.cache.is_local(call.model))
        return key_scope(call) if private else self.scope


def key_scope(call: Call) -> str:
    return f"key:{call.key.id if call.key is not None else '-'}"


def read_scope(cache: ResponseCache, call: Call, target: Target, settings: CacheRouteConfig) -> str:
    local = isinstance(target, ModelTarget) and cache.is_local(target.entry)
    return "shared" if settings.shared and not local else key_scope(call)


async def lookup(
    call: Call,
    target: Target,
    path: str,
    data: dict[str, Any],
    request: AnyRequest,
    headers: Mapping[str, str] | None,
) -> Lookup:
    """The cache's answer to this request, if it has one (then `response` is set)."""
    config = call.gateway.config.cache
    if not config.routes:
        return Lookup(call, Decision(None))
    decision = decide(config, target.name, data, headers or {})
    found = Lookup(call, decision)
    settings = decision.route
    if settings is None or not (decision.read or decision.write):
        return found
    cache = cache_of(call.gateway)
    found.cache, found.route = cache, target.name
    found.scope = read_scope(cache, call, target, settings)
    found.key = exact_key(found.scope, target.name, path, data)
    if decision.read and settings.exact:
        answer = await safe_get(cache.store, found.key)
        if answer is not None:
            found.response = _hit(call, answer, path, data, "exact")
            return found
    if settings.semantic:
        text = last_user_text(data, settings.template)
        vector = None if text is None else await cache.vector(text)
        if text is not None and vector is not None:
            group = f"{found.scope}|{semantic_group(target.name, path, data)}"
            found.semantic = _Semantic(group, vector, text)
            if decision.read:
                await _semantic_hit(found, cache, settings, path, data, target, request)
    return found


async def _semantic_hit(
    found: Lookup,
    cache: ResponseCache,
    settings: CacheRouteConfig,
    path: str,
    data: dict[str, Any],
    target: Target,
    request: AnyRequest,
) -> None:
    semantic = found.semantic
    assert semantic is not None
    rule = await cache.rule(target.name, settings)
    if rule is None:
        return
    k = 1 if rule.margin is None else NEIGHBOURS
    for _ in range(GONE_RETRIES):
        neighbours = cache.index.neighbours(semantic.group, semantic.vector, k)
        if not neighbours or neighbours[0].similarity < rule.threshold:
            return
        if rule.margin is not None and ambiguous(neighbours, rule.margin):
            return
        nearest = neighbours[0]
        try:
            answer = await cache.store.get(nearest.key)
        except Exception as exc:  # a store failure is a miss; the entry may still be there
            log.warning("response cache lookup failed, answering fresh: %s", exc)
            return
        if answer is not None:
            break
        cache.index.discard(semantic.group, nearest.key)  # cleared, evicted or expired
    else:
        return
    similarity = nearest.similarity
    found.response = _hit(found.call, answer, path, data, f"semantic {similarity:.3f}")
    if settings.audit_rate and random.random() < settings.audit_rate:
        cache.spawn(
            audit_hit(found.call.gateway, cache, target, request, answer, similarity, settings)
        )


def _hit(call: Call, answer: CachedAnswer, path: str, data: dict[str, Any], how: str) -> Response:
    """The stored answer as this request's: $0, its baseline cost as the saving."""
    gateway, entry = call.gateway, call.entry
    entry.model = answer.model
    known = gateway.registry.entries.get(answer.model)
    entry.tier = known.tier if known is not None else None
    entry.outcome, entry.route_reason = "cache", f"cache hit ({how})"
    entry.baseline_model = gateway.baseline.name
    entry.baseline_cost_usd = gateway.baseline.price.cost(answer.parsed_usage)
    call.first_token()
    call.succeed(Usage(0, 0), answer.text)
    chat = path == "/chat/completions"
    headers = {**call.headers(), HEADER: "hit"}
    if data.get("stream") is True:
        options = data.get("stream_options")
        include = isinstance(options, dict) and bool(options.get("include_usage"))
        events = answer.sse_events(call.request_id, chat, include)
        return StreamingResponse(_replay(events), media_type="text/event-stream",
                                 headers={**headers, **SSE_HEADERS})  # fmt: skip
    return Response(answer.json_answer(call.request_id, chat), media_type="application/json",
                    headers=headers)  # fmt: skip


async def _replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
