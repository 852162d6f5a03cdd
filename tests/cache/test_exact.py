"""The exact cache through a live gateway with the openai SDK: hits, misses, bypass, TTL,
scope per key, streaming replay, and the ledger row of a hit."""

from __future__ import annotations

import time

import pytest

from smallfirst.cache import stores
from smallfirst.testing import Script
from smallfirst.types import ToolCall
from tests.cache.helpers import MESSAGES, cached_config, request_rows, settled
from tests.server.gateway_helpers import running_gateway


@pytest.fixture
def gw(scripted):
    upstream, base_url = scripted
    with running_gateway(cached_config(base_url, {"small": {"ttl_s": 60}})) as running:
        running.upstream = upstream
        yield running


def ask(gw, client=None, **options):
    client = client or gw.client()
    options = {"model": "small", "messages": MESSAGES, "temperature": 0, **options}
    return client.chat.completions.with_raw_response.create(**options)


def test_a_repeated_deterministic_request_is_a_hit_at_no_cost(gw) -> None:
    gw.upstream.enqueue(Script(text="9 to 5", prompt_tokens=7, completion_tokens=3))
    first = ask(gw)
    assert first.headers["x-smallfirst-cache"] == "miss"
    settled(gw)
    second = ask(gw)
    assert second.headers["x-smallfirst-cache"] == "hit"
    answer = second.parse()
    assert answer.choices[0].message.content == "9 to 5"
    assert answer.usage.completion_tokens == 3
    assert answer.id != first.parse().id
    assert len(gw.upstream.received) == 1
    miss, hit = request_rows(gw)
    assert miss["outcome"] is None and miss["cost_usd"] > 0
    assert hit["outcome"] == "cache" and hit["cost_usd"] == 0 and hit["status"] == 200
    assert hit["model"] == "small" and hit["input_tokens"] == 0
    assert hit["baseline_cost_usd"] == pytest.approx(miss["baseline_cost_usd"])
    assert float(second.headers["x-smallfirst-cost-usd"]) == 0


def test_a_different_request_misses(gw) -> None:
    ask(gw)
    settled(gw)
    other = ask(gw, messages=[{"role": "user", "content": "Where are you?"}])
    assert other.headers["x-smallfirst-cache"] == "miss"
    also = ask(gw, max_tokens=7)
    assert also.headers["x-smallfirst-cache"] == "miss"
    assert len(gw.upstream.received) == 3


def test_text_parts_and_a_plain_string_are_the_same_request(gw) -> None:
    ask(gw)
    settled(gw)
    parts = [{"role": "user", "content": [{"type": "text", "text": MESSAGES[0]["content"]}]}]
    assert ask(gw, messages=parts, user="someone").headers["x-smallfirst-cache"] == "hit"


def test_non_deterministic_requests_and_opt_outs_bypass(gw) -> None:
    assert ask(gw, temperature=0.7).headers["x-smallfirst-cache"] == "bypass"
    settled(gw)
    assert ask(gw, temperature=0.7).headers["x-smallfirst-cache"] == "bypass"
    ask(gw, seed=3, temperature=0.7)
    settled(gw)
    assert ask(gw, seed=3, temperature=0.7).headers["x-smallfirst-cache"] == "hit"
    no_cache = ask(gw, seed=3, temperature=0.7, extra_headers={"Cache-Control": "no-cache"})
    assert no_cache.headers["x-smallfirst-cache"] == "bypass"
    body_opt_out = ask(gw, seed=3, temperature=0.7, metadata={"cache": "no-store"})
    assert body_opt_out.headers["x-smallfirst-cache"] == "bypass"
    assert ask(gw, seed=3, temperature=0.7, logprobs=True).headers["x-smallfirst-cache"] == (
        "bypass"  # a stored answer has no logprobs to give
    )
    assert len(gw.upstream.received) == 6


def test_no_store_keeps_nothing_and_no_cache_refreshes(gw) -> None:
    gw.upstream.enqueue(Script(text="old"), Script(text="new"))
    ask(gw, extra_headers={"Cache-Control": "no-store"})
    settled(gw)
    assert ask(gw).headers["x-smallfirst-cache"] == "miss"  # "new" is stored now
    settled(gw)
    assert ask(gw).parse().choices[0].message.content == "new"


def test_a_route_without_cache_sends_no_header(gw) -> None:
    raw = ask(gw, model="large")
    assert "x-smallfirst-cache" not in raw.headers


class _Clock:
    """`time.time` for the cache's store, moved forward by the test."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def time(self) -> float:
        return time.time() + self.ahead_s


def test_entries_expire_after_their_ttl(gw, monkeypatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(stores, "time", clock)
    ask(gw)
    settled(gw)
    clock.ahead_s = 30
    assert ask(gw).headers["x-smallfirst-cache"] == "hit"
    clock.ahead_s = 61  # the route's ttl_s is 60
    assert ask(gw).headers["x-smallfirst-cache"] == "miss"


def test_the_size_limit_drops_the_oldest_entries(scripted) -> None:
    _, base_url = scripted
    with running_gateway(cached_config(base_url, {"small": {"max_entries": 2}})) as gw:
        for n in range(3):
            ask(gw, seed=n)
            settled(gw)
        assert ask(gw, seed=0).headers["x-smallfirst-cache"] == "miss"
        assert ask(gw, seed=2).headers["x-smallfirst-cache"] == "hit"


def test_entries_belong_to_the_key_unless_the_route_shares_them(scripted) -> None:
    _, base_url = scripted
    routes = {"small": {}, "large": {"shared": True}}
    config = cached_config(base_url, routes, auth=True)
    config.models[1].capabilities.local = False  # loopback upstreams count as local
    with running_gateway(config) as gw:
        _, alice = gw.create_key("alice")
        _, bob = gw.create_key("bob")
        for model in ("small", "large"):
            ask(gw, gw.client(alice), model=model)
            settled(gw)
        assert ask(gw, gw.client(alice)).headers["x-smallfirst-cache"] == "hit"
        assert ask(gw, gw.client(bob)).headers["x-smallfirst-cache"] == "miss"
        shared = ask(gw, gw.client(bob), model="large")
        assert shared.headers["x-smallfirst-cache"] == "hit"


def test_a_local_model_never_shares_its_entries(scripted) -> None:
    _, base_url = scripted
    config = cached_config(base_url, {"small": {"shared": True}}, auth=True)
    assert config.models[0].capabilities.local is not False  # loopback: local
    with running_gateway(config) as gw:
        _, alice = gw.create_key("alice")
        _, bob = gw.create_key("bob")
        ask(gw, gw.client(alice))
        settled(gw)
        assert ask(gw, gw.client(bob)).headers["x-smallfirst-cache"] == "miss"
        assert ask(gw, gw.client(alice)).headers["x-smallfirst-cache"] == "hit"


def test_a_stream_replays_a_stored_answer_in_the_same_sse_shape(gw) -> None:
    gw.upstream.enqueue(Script(text="from nine to five", prompt_tokens=4, completion_tokens=5))
    client = gw.client()
    first = list(
        client.chat.completions.create(
            model="small", messages=MESSAGES, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    settled(gw)
    raw = client.chat.completions.with_raw_response.create(
        model="small", messages=MESSAGES, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    assert raw.headers["x-smallfirst-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    replay = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in replay if c.choices)
    assert text == "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert replay[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in replay if c.choices][-1] == "stop"
    plain = ask(gw)  # the streamed answer answers a plain request too
    assert plain.headers["x-smallfirst-cache"] == "hit"
    assert plain.parse().choices[0].message.content == "from nine to five"
    assert len(gw.upstream.received) == 1


def test_a_plain_answer_replays_as_a_stream(gw) -> None:
    gw.upstream.enqueue(Script(text="hours: 9-5"))
    ask(gw)
    settled(gw)
    chunks = list(
        gw.client().chat.completions.create(
            model="small", messages=MESSAGES, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hours: 9-5"


def test_legacy_completions_are_cached_too(gw) -> None:
    client = gw.client()
    client.completions.create(model="small", prompt="Once upon", temperature=0)
    settled(gw)
    raw = client.completions.with_raw_response.create(
        model="small", prompt="Once upon", temperature=0
    )
    assert raw.headers["x-smallfirst-cache"] == "hit"
    assert raw.parse().choices[0].text == "ok"


def test_a_stream_without_usage_is_kept_with_the_tokens_it_was_charged(gw) -> None:
    gw.upstream.enqueue(Script(text="nine to five", prompt_tokens=4, completion_tokens=3))
    client = gw.client()
    list(client.chat.completions.create(model="small", messages=MESSAGES, temperature=0,
                                        stream=True))  # fmt: skip
    settled(gw)
    answer = ask(gw).parse()
    assert answer.usage.prompt_tokens == 4 and answer.usage.completion_tokens == 3
    miss, hit = request_rows(gw)
    assert hit["outcome"] == "cache"
    assert miss["baseline_cost_usd"] > 0
    assert hit["baseline_cost_usd"] == pytest.approx(miss["baseline_cost_usd"])


def test_tool_calls_replay_as_json_and_as_a_stream(gw) -> None:
    call = ToolCall(id="call_1", name="hours", arguments='{"day": "monday"}')
    gw.upstream.enqueue(Script(text="", tool_calls=[call]))
    tools = [{"type": "function", "function": {"name": "hours", "parameters": {"type": "object"}}}]
    ask(gw, tools=tools)
    settled(gw)
    hit = ask(gw, tools=tools)
    assert hit.headers["x-smallfirst-cache"] == "hit"
    (called,) = hit.parse().choices[0].message.tool_calls
    assert called.function.name == "hours" and called.function.arguments == '{"day": "monday"}'
    chunks = list(
        gw.client().chat.completions.create(
            model="small", messages=MESSAGES, temperature=0, tools=tools, stream=True
        )
    )
    pieces = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert pieces[0].function.name == "hours"
    assert "".join(p.function.arguments or "" for p in pieces) == '{"day": "monday"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert len(gw.upstream.received) == 1
