"""POST /v1/tasks/{name} fails over like a chat request: each retry and fallback is a hop row,
a fallback must fit the key's reservation, and the request row is charged at the model that
answered. Real scripted upstreams, one per model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from smallfirst.config import Config
from smallfirst.testing import Script, ScriptedUpstream
from tests.routing.upstreams import scripted_models
from tests.server.gateway_helpers import RunningGateway, running_gateway

SPEC = "kind: classify\nlabels:\n  negative: unhappy\n  positive: happy\n"
PRICES = {"small": (1.0, 2.0), "spare": (1.0, 2.0), "large": (10.0, 30.0)}
TIERS = {"small": "small", "spare": "small", "large": "large"}
ANSWER = Script(text='{"label": "positive"}', prompt_tokens=100, completion_tokens=4)
FAILOVER = {"retries": 1, "backoff_s": 0.0, "max_backoff_s": 0.0, "failure_threshold": 10}

Upstreams = tuple[dict[str, ScriptedUpstream], dict[str, str]]


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with scripted_models("small", "spare", "large") as (scripted, urls):
        for upstream in scripted.values():
            upstream.default = ANSWER
        yield scripted, urls


def config_for(urls: dict[str, str], tmp_path: Path, fallbacks: list[str]) -> Config:
    (tmp_path / "sentiment.yaml").write_text(SPEC)
    models = [
        {
            "name": name,
            "backend": "openai",
            "base_url": url,
            "tier": TIERS[name],
            "timeout_s": 2.0,
            "price": {"input": PRICES[name][0], "output": PRICES[name][1]},
        }
        for name, url in urls.items()
    ]
    failover = {**FAILOVER, "fallbacks": {"small": fallbacks}}
    return Config.model_validate(
        {
            "models": models,
            "default_model": "small",
            "failover": failover,
            "tasks": {"sentiment": str(tmp_path / "sentiment.yaml")},
        }
    )


def run(gw: RunningGateway, api_key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"input": "I love it", "model": "small"}
    return httpx.post(gw.url + "/v1/tasks/sentiment", json=body, headers=headers)


def rows(gw: RunningGateway) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    found = gw.rows()
    [request] = [row for row in found if row["kind"] == "request"]
    return request, [row for row in found if row["kind"] == "hop"]


def test_a_retry_is_a_hop_row(upstreams: Upstreams, tmp_path: Path) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503))
    with running_gateway(config_for(urls, tmp_path, ["large"])) as gw:
        response = run(gw)
        request, hops = rows(gw)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "small" and response.json()["label"] == "positive"
    assert [(h["step"], h["outcome"], h["model"]) for h in hops] == [
        ("failure", "error", "small"),
        ("answer", "ok", "small"),
    ]
    assert all(h["request_id"] == request["request_id"] for h in hops)
    assert request["model"] == "small" and request["cost_usd"] == pytest.approx(100e-6 + 8e-6)
    assert not scripted["large"].received


def test_a_fallback_is_charged_at_the_model_that_answered(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503), Script("reset"))
    with running_gateway(config_for(urls, tmp_path, ["large"])) as gw:
        response = run(gw)
        request, hops = rows(gw)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "large"
    assert response.headers["x-smallfirst-model"] == "large"
    assert [(h["step"], h["outcome"], h["model"]) for h in hops] == [
        ("failure", "error", "small"),
        ("failure", "error", "small"),
        ("fallback", "next_model", "large"),
        ("answer", "ok", "large"),
    ]
    assert "503" in hops[0]["error"] and "unreachable" in hops[1]["error"]
    assert (request["model"], request["tier"], request["status"]) == ("large", "large", 200)
    # 100 prompt and 4 output tokens at the large model's $10 / $30 per million, not small's
    assert request["cost_usd"] == pytest.approx(1000e-6 + 120e-6)
    assert float(response.headers["x-smallfirst-cost-usd"]) == pytest.approx(1120e-6)
    assert len(scripted["large"].received) == 1


def test_a_fallback_beyond_the_keys_reservation_is_skipped(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    """The key was admitted for small's worst case: large's does not fit, the spare does."""
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    with running_gateway(config_for(urls, tmp_path, ["large", "spare"]), auth=True) as gw:
        _key, secret = gw.create_key("team", budget_usd=1.0)
        response = run(gw, secret)
        request, hops = rows(gw)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "spare"
    assert not scripted["large"].received
    assert ("failure", "skipped", "large") in [(h["step"], h["outcome"], h["model"]) for h in hops]
    assert request["model"] == "spare" and request["cost_usd"] == pytest.approx(108e-6)


def test_no_fallback_that_fits_is_a_502_with_its_hops(upstreams: Upstreams, tmp_path: Path) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    with running_gateway(config_for(urls, tmp_path, ["large"]), auth=True) as gw:
        _key, secret = gw.create_key("team", budget_usd=1.0)
        response = run(gw, secret)
        request, hops = rows(gw)
    assert response.status_code == 502, response.text
    assert "small" in response.json()["error"]["message"]
    assert not scripted["large"].received
    assert [(h["step"], h["outcome"], h["model"]) for h in hops] == [
        ("failure", "error", "small"),
        ("failure", "error", "small"),
        ("failure", "skipped", "large"),
    ]
    assert request["status"] == 502 and request["cost_usd"] == 0


INVALID = Script(text="dunno", prompt_tokens=100, completion_tokens=4)


def test_invalid_output_is_charged_for_every_call_to_the_row_and_the_key(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    """The first answer and its repair turn were both billed upstream: a 502 is not free."""
    scripted, urls = upstreams
    scripted["small"].enqueue(INVALID, INVALID)
    with running_gateway(config_for(urls, tmp_path, ["large"]), auth=True) as gw:
        key, secret = gw.create_key("team", budget_usd=1.0)
        response = run(gw, secret)
        request, _hops = rows(gw)
        spent = gw.gateway.limiter.spent(key.id)
        assert gw.ledger.store.engine.dialect.name == "sqlite"
        persisted = gw.ledger.store.spend_by_key()  # what a restarted gateway's budget reads
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "invalid_task_output"
    assert len(scripted["small"].received) == 2
    assert (request["status"], request["model"]) == (502, "small")
    assert (request["input_tokens"], request["output_tokens"]) == (200, 8)
    # two calls of 100 prompt and 4 output tokens at small's $1 / $2 per million
    assert request["cost_usd"] == pytest.approx(2 * (100e-6 + 8e-6))
    assert spent == pytest.approx(request["cost_usd"])
    assert persisted[key.id] == pytest.approx(request["cost_usd"])


def test_invalid_output_from_a_fallback_is_charged_at_its_rates(
    upstreams: Upstreams, tmp_path: Path
) -> None:
    scripted, urls = upstreams
    scripted["small"].default = Script("error", status=503)
    scripted["large"].enqueue(INVALID, INVALID)
    with running_gateway(config_for(urls, tmp_path, ["large"])) as gw:
        response = run(gw)
        request, hops = rows(gw)
    assert response.status_code == 502, response.text
    assert ("fallback", "next_model", "large") in [
        (h["step"], h["outcome"], h["model"]) for h in hops
    ]
    assert (request["status"], request["model"], request["tier"]) == (502, "large", "large")
    assert (request["input_tokens"], request["output_tokens"]) == (200, 8)
    # the repair turn is tried on small first (still failing) and answered by large again
    assert request["cost_usd"] == pytest.approx(2 * (1000e-6 + 120e-6))
