"""A gateway with the response cache on, in front of a scripted upstream."""

from __future__ import annotations

import time
from typing import Any

from smallfirst.cache.gateway import cache_of
from smallfirst.config import CacheConfig, Config
from tests.server.gateway_helpers import RunningGateway, scripted_config

MESSAGES = [{"role": "user", "content": "What are your opening hours?"}]


def cached_config(base_url: str, routes: dict[str, Any] | None = None, **server: Any) -> Config:
    config = scripted_config(base_url, **server)
    config.cache = CacheConfig(routes=routes if routes is not None else {"small": {}})
    return config


def settled(gw: RunningGateway, timeout_s: float = 5.0) -> None:
    """Wait until the answers being stored (after their responses went out) are stored."""
    cache = cache_of(gw.gateway)
    deadline = time.monotonic() + timeout_s
    while not cache.idle:
        assert time.monotonic() < deadline, "the cache never finished storing"
        time.sleep(0.01)


def request_rows(gw: RunningGateway) -> list[dict[str, Any]]:
    return gw.rows(kind="request")
