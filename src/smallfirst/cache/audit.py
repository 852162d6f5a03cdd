"""Audits of semantic hits: a sampled hit's request is answered fresh, after the client got
the cached answer, and the two compared; each audit is evidence that can raise the task's
threshold (never lower it). The fresh answer's spend is a ledger row (outcome `cache-audit`,
no baseline: it saved nothing).

Closed outputs (a label, a number, a short answer) must match exactly (case, spacing and
end punctuation aside); free text matches when its static embeddings are close
(`FREE_TEXT_SIMILARITY`), a cheap stand-in for a judge.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from smallfirst.cache.ambiguity import normalised
from smallfirst.config import CacheRouteConfig
from smallfirst.ledger.entry import LedgerEntry
from smallfirst.server.call import new_request_id
from smallfirst.target import AnyRequest, Target

if TYPE_CHECKING:
    from smallfirst.cache.entry import CachedAnswer
    from smallfirst.cache.gateway import ResponseCache

log = logging.getLogger("smallfirst.cache")
CLOSED_WORDS = 8
"""Answers of at most this many words are closed outputs, compared exactly."""
FREE_TEXT_SIMILARITY = 0.9


def same_answer(cached: str, fresh: str, cache: ResponseCache) -> bool:
    if max(len(cached.split()), len(fresh.split())) <= CLOSED_WORDS:
        return normalised(cached) == normalised(fresh)
    vectors = cache.index.embedder.encode([cached, fresh])
    return float(np.dot(vectors[0], vectors[1])) >= FREE_TEXT_SIMILARITY


async def audit_hit(
    gateway: Any,
    cache: ResponseCache,
    target: Target,
    request: AnyRequest,
    cached: CachedAnswer,
    similarity: float,
    settings: CacheRouteConfig,
) -> None:
    task = target.name
    try:
        fresh = await target.generate(request)
    except Exception as exc:  # an audit that could not run is no evidence either way
        log.warning("response cache audit for %r could not answer fresh: %s", task, exc)
        return
    row = LedgerEntry(request_id=new_request_id(), outcome="cache-audit", model=fresh.model)
    row.tier, row.requested_model = fresh.route.model.tier, task
    row.input_tokens, row.output_tokens = fresh.usage.input_tokens, fresh.usage.output_tokens
    row.cost_usd = fresh.cost_usd
    gateway.record(row)
    try:
        right = same_answer(cached.text, fresh.text, cache)
        threshold = await asyncio.to_thread(
            cache.thresholds.add_audit, task, similarity, right, settings.target_precision
        )
    except Exception as exc:
        log.warning("response cache audit for %r not recorded: %s", task, exc)
        return
    cache.forget_threshold(task)
    if not right:
        log.warning("response cache audit for %r: wrong hit at %.3f; threshold now %.3f",
                    task, similarity, threshold)  # fmt: skip
