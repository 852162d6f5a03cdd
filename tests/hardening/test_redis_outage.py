"""Redis unreachable: keyed requests are refused with a clear 503, never served unlimited,
and each refusal is still one ledger row."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.testing import free_port
from tests.server.gateway_helpers import running_gateway, scripted_config


def test_requests_get_503_while_redis_is_down(scripted) -> None:
    pytest.importorskip("redis", reason="redis-py missing: pip install -e '.[dev]'")
    upstream, base_url = scripted
    config = scripted_config(base_url, auth=True, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with running_gateway(config) as gw:
        _key, secret = gw.create_key("team", rpm=100)
        body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {secret}"}
        replies = [
            httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
            for _ in range(3)
        ]
        rows = gw.rows()
    for reply in replies:
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        error = reply.json()["error"]
        assert error["type"] == "limits_unavailable" and "Redis" in error["message"]
    assert upstream.received == []  # nothing ran without its limits
    assert [row["status"] for row in rows] == [503, 503, 503]
