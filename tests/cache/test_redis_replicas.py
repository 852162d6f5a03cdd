"""Two gateway replicas sharing one Redis share the cache: one answers, the other hits."""

from __future__ import annotations

from smallfirst.cache.stores import RedisStore
from tests.cache.helpers import MESSAGES, cached_config, settled
from tests.server.gateway_helpers import running_gateway
from tests.server.redis_server import redis_url  # noqa: F401  (fixture)


def ask(gw):
    return gw.client().chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, temperature=0
    )


def test_a_hit_on_one_replica_is_a_hit_on_the_other(scripted, redis_url, tmp_path) -> None:  # noqa: F811
    upstream, base_url = scripted
    one = cached_config(base_url, redis_url=redis_url, ledger_url=f"sqlite:///{tmp_path}/a.db")
    two = cached_config(base_url, redis_url=redis_url, ledger_url=f"sqlite:///{tmp_path}/b.db")
    with running_gateway(one) as first, running_gateway(two) as second:
        assert ask(first).headers["x-smallfirst-cache"] == "miss"
        settled(first)
        raw = ask(second)
        assert raw.headers["x-smallfirst-cache"] == "hit"
        assert raw.parse().choices[0].message.content == "ok"
        assert len(upstream.received) == 1
        assert isinstance(_store(second), RedisStore)
        hit = second.rows(kind="request")[0]
        assert hit["outcome"] == "cache" and hit["cost_usd"] == 0


def _store(gw):
    from smallfirst.cache.gateway import cache_of

    return cache_of(gw.gateway).store
