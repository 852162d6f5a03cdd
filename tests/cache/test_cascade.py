"""A cascade's accepted answer is cached like any other: the hit skips the whole ladder."""

from __future__ import annotations

from smallfirst.config import CacheConfig
from smallfirst.testing import Script
from tests.cache.helpers import settled
from tests.routing.upstreams import registry_for, scripted_models
from tests.server.gateway_helpers import running_gateway

CASCADE = {
    "rungs": ["small", "large"],
    "checks": [{"kind": "constraint", "labels": ["positive", "negative", "neutral"]}],
}


def test_an_escalated_answer_is_a_hit_with_no_rung_called() -> None:
    with scripted_models("small", "large") as (upstreams, urls):
        upstreams["small"].default = Script(text="not a label")
        upstreams["large"].default = Script(text="negative", prompt_tokens=50)
        config = registry_for(urls, {"small": "small", "large": "large"},
                              cascades={"sentiment": CASCADE}).config  # fmt: skip
        config.cache = CacheConfig(routes={"cascade-sentiment": {}})
        with running_gateway(config) as gw:
            options = {"model": "cascade-sentiment", "temperature": 0,
                       "messages": [{"role": "user", "content": "awful day"}]}  # fmt: skip
            first = gw.client().chat.completions.with_raw_response.create(**options)
            assert first.headers["x-smallfirst-cache"] == "miss"
            settled(gw)
            calls = len(upstreams["small"].received) + len(upstreams["large"].received)
            hit = gw.client().chat.completions.with_raw_response.create(**options)
            assert hit.headers["x-smallfirst-cache"] == "hit"
            assert hit.parse().choices[0].message.content == "negative"
            assert len(upstreams["small"].received) + len(upstreams["large"].received) == calls
            row = gw.rows(kind="request")[-1]
            assert row["outcome"] == "cache" and row["model"] == "large" and row["cost_usd"] == 0
