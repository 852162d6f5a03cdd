"""Keys, budgets and rate limits through the running gateway, under concurrency."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from smallfirst.config import Config
from smallfirst.testing import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def config(scripted) -> Config:
    return scripted_config(scripted[1])


@pytest.fixture
def gw(config):
    with running_gateway(config, auth=True) as running:
        yield running


def test_missing_invalid_and_revoked_keys_get_401(gw) -> None:
    missing = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "small", "messages": MESSAGES}
    )
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    _key, secret = gw.create_key("team-a")
    for wrong in ("sk-not-ours", secret[:-2] + "xx", "sf-00000000-nothing"):
        with pytest.raises(openai.AuthenticationError):
            gw.client(api_key=wrong).chat.completions.create(model="small", messages=MESSAGES)
    answer = gw.client(api_key=secret).chat.completions.create(model="small", messages=MESSAGES)
    assert answer.choices[0].message.content == "ok"
    gw.ledger.keys.revoke("team-a")
    gw.gateway.auth.invalidate()
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(api_key=secret).chat.completions.create(model="small", messages=MESSAGES)
    assert "revoked" in caught.value.message
    rows = gw.rows()
    assert [r["status"] for r in rows] == [401, 401, 401, 401, 200, 401]
    assert rows[4]["key_name"] == "team-a" and rows[4]["key_id"] == _key.id


def test_keys_are_stored_hashed(gw) -> None:
    _key, secret = gw.create_key("team-b", budget_usd=5, rpm=60)
    [stored] = gw.ledger.keys.all()
    assert secret not in stored.key_hash and len(stored.key_hash) == 64
    assert stored.matches(secret) and not stored.matches(secret + "x")


async def _burst(gw, secret: str, n: int, **create) -> list[object]:
    client = gw.async_client(api_key=secret)

    async def one():
        try:
            return await client.chat.completions.create(model="small", messages=MESSAGES, **create)
        except openai.APIStatusError as exc:
            return exc

    try:
        return await asyncio.gather(*(one() for _ in range(n)))
    finally:
        await client.close()


async def test_rpm_under_concurrency_admits_exactly_the_limit(gw) -> None:
    _key, secret = gw.create_key("team-rpm", rpm=5)
    results = await _burst(gw, secret, 20)
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(results) - len(refused) == 5 and len(refused) == 15
    assert all(int(r.response.headers["retry-after"]) >= 1 for r in refused)
    assert all(r.body["type"] == "rate_limit_error" for r in refused)
    rows = gw.rows()
    assert sorted(r["status"] for r in rows) == [200] * 5 + [429] * 15


async def test_budget_under_concurrency_admits_exactly_what_it_covers(gw, scripted) -> None:
    upstream, _ = scripted
    # "hello" is estimated at 2 prompt tokens and max_tokens=1 bounds the answer; the upstream
    # reports exactly that, so every request costs its estimate and 3.5 requests' worth of
    # budget admits exactly 3 of 12 concurrent ones, whatever order they settle in.
    upstream.default = Script(text="ok", prompt_tokens=2, completion_tokens=1)
    one_cost = (2 * 1.0 + 1 * 2.0) / 1e6
    key, secret = gw.create_key("team-budget", budget_usd=one_cost * 3.5)
    results = await _burst(gw, secret, 12, max_tokens=1)
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) == 3 and len(refused) == 9
    assert all(r.body["code"] == "insufficient_quota" for r in refused)
    rows = gw.rows()
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(3 * one_cost)
    assert gw.gateway.limiter.spent(key.id) == pytest.approx(3 * one_cost)


def test_exhausted_budget_survives_a_restart(config) -> None:
    with running_gateway(config, auth=True) as gw:
        # estimated $5e-5 (2 prompt tokens + max_tokens 1) fits; the real $8e-5 exhausts it
        _key, secret = gw.create_key("team-c", budget_usd=6e-5)
        gw.client(api_key=secret).chat.completions.create(
            model="large", messages=MESSAGES, max_tokens=1
        )
    with running_gateway(config, auth=True) as gw:
        with pytest.raises(openai.RateLimitError) as caught:
            gw.client(api_key=secret).chat.completions.create(model="small", messages=MESSAGES)
        assert caught.value.body["code"] == "insufficient_quota"
        assert "team-c" in caught.value.message


def test_tpm_limits_tokens_per_minute(gw) -> None:
    _key, secret = gw.create_key("team-tpm", tpm=50)
    client = gw.client(api_key=secret)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=100)
    assert caught.value.body["code"] == "request_too_large"
    client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=30)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=45)
    assert caught.value.response.headers["retry-after"]


def test_without_auth_a_valid_key_is_still_attributed_and_limited(config) -> None:
    with running_gateway(config) as gw:
        _key, secret = gw.create_key("team-d", rpm=1)
        gw.client(api_key="anything").chat.completions.create(model="small", messages=MESSAGES)
        gw.client(api_key=secret).chat.completions.create(model="small", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            gw.client(api_key=secret).chat.completions.create(model="small", messages=MESSAGES)
        rows = gw.rows()
        assert [(r["key_name"], r["status"]) for r in rows] == [
            (None, 200),
            ("team-d", 200),
            ("team-d", 429),
        ]
