"""Two gateway replicas sharing one PostgreSQL ledger and one Redis: limits hold across both."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest

from smallfirst.config import Config
from smallfirst.server.redis_limits import RedisLimiter
from smallfirst.testing import Script
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture
from tests.server.redis_server import redis_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow
PROMPT = "0123456789abcdef"  # 16 characters: estimated at 5 prompt tokens, as the upstream says


@pytest.fixture
def ledger_url(postgres_url: str) -> str:  # noqa: F811 - the fixture above
    return fresh_database(postgres_url, "replicas")


@pytest.fixture
def replicas(scripted, ledger_url: str, redis_url: str) -> Iterator[list[RunningGateway]]:  # noqa: F811
    upstream, base_url = scripted
    upstream.default.prompt_tokens = 5
    config = scripted_config(base_url, redis_url=redis_url, auth=True, ledger_url=ledger_url)
    with ExitStack() as stack:
        yield [stack.enter_context(running_gateway(config)) for _ in range(2)]


def shared_key(replicas: list[RunningGateway], **limits) -> str:
    _key, secret = replicas[0].create_key(f"team-{secrets.token_hex(3)}", **limits)
    replicas[1].gateway.auth.invalidate()
    return secret


def burst(replicas: list[RunningGateway], secret: str, count: int) -> list[int]:
    """`count` concurrent requests, alternating between the replicas; their statuses."""

    def one(i: int) -> int:
        response = httpx.post(
            replicas[i % 2].url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={
                "model": "small",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": PROMPT}],
            },
            timeout=30,
        )
        if response.status_code != 200:
            assert response.json()["error"]["message"]
        return response.status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_replicas_use_the_shared_limiter(replicas: list[RunningGateway]) -> None:
    assert all(isinstance(r.gateway.limiter, RedisLimiter) for r in replicas)


def test_rpm_holds_across_replicas(replicas: list[RunningGateway]) -> None:
    secret = shared_key(replicas, rpm=5)
    statuses = burst(replicas, secret, 20)
    assert sorted(statuses) == [200] * 5 + [429] * 15
    replicas[1].ledger.flush()
    rows = replicas[0].rows()  # one shared ledger: both replicas' rows
    assert sorted(row["status"] for row in rows) == sorted(statuses)
    assert len({row["request_id"] for row in rows}) == 20


def test_budget_holds_across_replicas(replicas: list[RunningGateway]) -> None:
    cost = replicas[0].gateway.registry.get("small").price.cost
    from smallfirst.types import Usage

    one_request = cost(Usage(5, 1))
    secret = shared_key(replicas, budget_usd=3.5 * one_request)
    statuses = burst(replicas, secret, 12)
    assert statuses.count(200) == 3 and statuses.count(429) == 9
    replicas[0].ledger.flush()
    ok = [row for row in replicas[1].rows() if row["status"] == 200]
    assert len(ok) == 3
    assert sum(row["cost_usd"] for row in ok) == pytest.approx(3 * one_request)


def test_a_cooldown_on_one_replica_is_seen_by_the_other(
    scripted,
    ledger_url: str,
    redis_url: str,  # noqa: F811
) -> None:
    upstream, base_url = scripted
    base = scripted_config(base_url, redis_url=redis_url, ledger_url=ledger_url)
    config = Config(
        models=base.models,
        server=base.server,
        failover={"retries": 0, "failure_threshold": 1, "cooldown_s": 600},
        cascades={f"c{secrets.token_hex(3)}": {"rungs": ["small", "large"]}},
    )
    cascade = "cascade-" + next(iter(config.cascades))
    upstream.enqueue(Script("error", status=503))  # the small model fails once, on replica A
    body = {"model": cascade, "messages": [{"role": "user", "content": "hi"}]}
    with ExitStack() as stack:
        a, b = (stack.enter_context(running_gateway(config)) for _ in range(2))
        assert httpx.post(a.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
        assert httpx.post(b.url + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    # A tried small (503), then large; B skipped small, cooling down after A's failure
    assert [r["model"] for r in upstream.received] == ["up-small", "up-large", "up-large"]
