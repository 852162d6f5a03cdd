"""30 concurrent requests on a $0.001 key never spend more than the budget, for every shape of
request that the old admission under-estimated: big tool definitions, images, cascades."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import openai
import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.testing import Script
from tests.routing.upstreams import registry_for, scripted_models
from tests.server.gateway_helpers import RunningGateway, running_gateway

BUDGET = 0.001
CONCURRENT = 30
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Looks things up. " * 125,  # 2,000 characters
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for i in range(20)
]
IMAGE_MESSAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ],
}
LABELS = {"kind": "constraint", "labels": ["positive", "negative"]}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def bills_the_body(body: dict[str, Any]) -> int:
    """An upstream that bills its messages' text and its tool definitions (as JSON) at four
    characters a token, rounded up."""
    text = "".join(m["content"] for m in body["messages"])
    return math.ceil(len(text + compact(body.get("tools", []))) / 4)


def one_model(url: str, price: Price) -> Config:
    return Config(
        models=[ModelConfig(name="paid", backend="openai", base_url=url, tier="small", price=price)]
    )


async def burst(gw: RunningGateway, secret: str, **create: Any) -> list[Any]:
    client = gw.async_client(api_key=secret)

    async def one() -> Any:
        try:
            return await client.chat.completions.create(max_tokens=2, **create)
        except openai.APIStatusError as exc:
            return exc

    try:
        return await asyncio.gather(*(one() for _ in range(CONCURRENT)))
    finally:
        await client.close()


async def assert_within_budget(gw: RunningGateway, **create: Any) -> None:
    key, secret = gw.create_key("probe", budget_usd=BUDGET)
    results = await burst(gw, secret, **create)
    answered = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert answered, "the budget covers some requests: the test must not pass vacuously"
    assert len(answered) + len(refused) == CONCURRENT
    assert all(r.body["code"] == "insufficient_quota" for r in refused)
    rows = [r for r in gw.rows() if r["kind"] == "request" and r["key_id"] == key.id]
    assert sum(r["cost_usd"] for r in rows) <= BUDGET
    assert gw.gateway.limiter.spent(key.id) <= BUDGET


async def test_big_tool_definitions_are_counted(scripted) -> None:
    upstream, url = scripted
    upstream.default = Script(text="ok", bill_prompt=bills_the_body)
    # ~10,600 prompt tokens a request: about three fit in the budget
    config = one_model(url, Price(input=0.025, output=0.1))
    with running_gateway(config, auth=True) as gw:
        messages = [{"role": "user", "content": "hi"}]
        await assert_within_budget(gw, model="paid", messages=messages, tools=TOOLS)


async def test_an_image_is_counted_by_the_tile_rule(scripted) -> None:
    upstream, url = scripted
    upstream.default = Script(text="a cat", prompt_tokens=800)
    config = one_model(url, Price(input=0.2, output=0.8))
    with running_gateway(config, auth=True) as gw:
        await assert_within_budget(gw, model="paid", messages=[IMAGE_MESSAGE])


@pytest.mark.parametrize(
    ("first", "tiers"),
    [("tiny", {"tiny": "tiny", "large": "large"}), ("small", {"small": "small", "large": "large"})],
    ids=["free-first-rung", "two-paid-rungs"],
)
async def test_a_cascade_is_priced_at_every_rung_it_may_climb(first, tiers, tmp_path) -> None:
    with scripted_models(first, "large") as (upstreams, urls):
        upstreams[first].default = Script(text="no idea", bill_prompt=bills_the_body)
        upstreams["large"].default = Script(text="positive", bill_prompt=bills_the_body)
        cascade = {"rungs": [first, "large"], "checks": [LABELS]}
        config = registry_for(urls, tiers, cascades={"ladder": cascade}).config
        with running_gateway(config, auth=True) as gw:
            messages = [{"role": "user", "content": "great day"}]
            await assert_within_budget(gw, model="cascade-ladder", messages=messages)
            assert upstreams["large"].received, "the requests climbed to the paid rung"
