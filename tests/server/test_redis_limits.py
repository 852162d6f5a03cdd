"""RedisLimiter: the in-memory limiter's rules, shared through a real Redis server."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from smallfirst.errors import BudgetExceededError, ConfigError, RateLimitError
from smallfirst.ledger.keys import ApiKey
from smallfirst.server.redis_limits import RedisLimiter
from tests.server.redis_server import redis_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def key(**limits) -> ApiKey:
    return ApiKey(id=secrets.token_hex(4), name="team-a", key_hash="x", **limits)


def test_rpm_is_exact_across_limiters_sharing_redis(redis_url: str) -> None:  # noqa: F811
    replicas = [RedisLimiter.from_url(redis_url) for _ in range(2)]
    k = key(rpm=5)

    def attempt(i: int) -> bool:
        try:
            replicas[i % 2].reserve(k, 1, 0.0)
            return True
        except RateLimitError as exc:
            assert 0 < exc.retry_after <= 60
            return False

    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(attempt, range(20)))
    assert sum(admitted) == 5


def test_tpm_counts_settled_tokens_not_estimates(redis_url: str) -> None:  # noqa: F811
    limiter = RedisLimiter.from_url(redis_url)
    k = key(tpm=100)
    first = limiter.reserve(k, 90, 0.0)
    with pytest.raises(RateLimitError) as caught:
        limiter.reserve(k, 20, 0.0)
    assert "90 used" in caught.value.message
    limiter.settle(first, 30, 0.0)
    limiter.reserve(k, 20, 0.0)
    with pytest.raises(RateLimitError) as too_large:
        limiter.reserve(k, 101, 0.0)
    assert too_large.value.code == "request_too_large"


def test_budget_counts_in_flight_then_spent(redis_url: str) -> None:  # noqa: F811
    limiter, other = RedisLimiter.from_url(redis_url), RedisLimiter.from_url(redis_url)
    k = key(budget_usd=1.0)
    first = limiter.reserve(k, 1, 0.6)
    with pytest.raises(BudgetExceededError) as in_flight:
        other.reserve(k, 1, 0.6)  # the other replica sees the reservation
    assert in_flight.value.retry_after == 1.0
    limiter.settle(first, 1, 0.5)
    other.reserve(k, 1, 0.4)
    assert other.spent(k.id) == pytest.approx(0.5)


def test_load_spend_never_lowers_the_shared_total(redis_url: str) -> None:  # noqa: F811
    limiter = RedisLimiter.from_url(redis_url)
    k = key(budget_usd=1.0)
    limiter.load_spend({k.id: 0.7})
    limiter.load_spend({k.id: 0.2})  # a replica whose ledger is behind
    assert limiter.spent(k.id) == pytest.approx(0.7)
    with pytest.raises(BudgetExceededError):
        limiter.reserve(k, 1, 0.5)
    limiter.load_spend({k.id: 1.0})
    with pytest.raises(BudgetExceededError) as spent:
        limiter.reserve(k, 1, 0.0)
    assert "has spent" in spent.value.message


def test_redis_url_without_redis_py_is_a_config_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError, match="pip install 'smallfirst\\[redis\\]'"):
        RedisLimiter.from_url("redis://127.0.0.1:1/0")


def test_unreachable_redis_refuses_with_503_and_settle_does_not_raise(caplog) -> None:
    from smallfirst.server.redis_limits import LimitsUnavailableError
    from smallfirst.testing import free_port

    limiter = RedisLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LimitsUnavailableError) as caught:
        limiter.reserve(key(rpm=1), 1, 0.0)
    assert caught.value.status == 503 and "unreachable" in caught.value.message
    assert caught.value.headers["Retry-After"] == "1"
    calls: list[dict] = []
    limiter._reserve = lambda **kwargs: calls.append(kwargs)
    with pytest.raises(LimitsUnavailableError):
        limiter.reserve(key(rpm=1), 1, 0.0)
    assert calls == []  # within DOWN_RECHECK_S the refusal does not wait on Redis again
    from smallfirst.server.limits import Reservation

    limiter.settle(Reservation("k", 1, 0.1, [], "m-1"), 1, 0.1)
    assert "could not settle" in caplog.text
