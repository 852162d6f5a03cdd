"""A corrupt or unreachable cache store never fails a request: it is a miss, logged."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from smallfirst.cache.entry import CachedAnswer
from smallfirst.cache.stores import RedisStore, safe_get, safe_put
from smallfirst.testing.background import free_port
from tests.cache.helpers import MESSAGES, cached_config, settled
from tests.server.gateway_helpers import running_gateway


def ask(gw):
    return gw.client().chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, temperature=0
    )


def test_a_corrupt_entry_is_a_logged_miss(scripted, caplog) -> None:
    _, base_url = scripted
    with running_gateway(cached_config(base_url)) as gw:
        ask(gw)
        settled(gw)
        with gw.ledger.store.engine.begin() as conn:
            conn.execute(text("UPDATE response_cache SET entry = '{not json'"))
        with caplog.at_level(logging.WARNING, "smallfirst.cache"):
            raw = ask(gw)
        assert raw.headers["x-smallfirst-cache"] == "miss"
        assert raw.parse().choices[0].message.content == "ok"
        assert "response cache lookup failed" in caplog.text


def test_a_store_that_fails_every_call_never_fails_a_request(scripted, caplog) -> None:
    _, base_url = scripted
    with running_gateway(cached_config(base_url)) as gw:
        with gw.ledger.store.engine.begin() as conn:
            conn.execute(text("DROP TABLE response_cache"))
        with caplog.at_level(logging.WARNING, "smallfirst.cache"):
            for _ in range(2):
                raw = ask(gw)
                settled(gw)
                assert raw.status_code == 200
                assert raw.headers["x-smallfirst-cache"] == "miss"
        assert "response cache store failed" in caplog.text
        assert [row["status"] for row in gw.rows(kind="request")] == [200, 200]


@pytest.mark.asyncio
async def test_an_unreachable_redis_is_a_miss_and_a_no_op(caplog) -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    answer = CachedAnswer(model="small", text="hi")
    with caplog.at_level(logging.WARNING, "smallfirst.cache"):
        await safe_put(store, "key:-|x|1", "key:-", "small", answer, 60, 10)
        assert await safe_get(store, "key:-|x|1") is None
    assert "response cache lookup failed" in caplog.text
    await store.aclose()
