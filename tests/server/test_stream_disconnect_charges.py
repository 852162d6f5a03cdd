"""A client that leaves mid-stream pays for what it was sent, and that counts against its key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.models.registry import BACKENDS
from smallfirst.models.replay import ReplayProvider, approx_tokens
from smallfirst.server.admission import text_tokens
from smallfirst.testing import Script
from smallfirst.types import Delta, Usage
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

EIGHT_WORDS = "one two three four five six seven eight"
READ_BEFORE_LEAVING = 7


@pytest.fixture
def gw(scripted):
    upstream, url = scripted
    upstream.default = Script("slow_stream", text=EIGHT_WORDS, delay_s=0.02)
    with running_gateway(scripted_config(url), auth=True) as running:
        yield running


def open_stream(gw: RunningGateway, secret: str, model: str):
    """A streamed chat request with a raw client (a context manager yielding the response)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "count to eight"}],
        "stream": True,
        "max_tokens": 16,
    }
    headers = {"authorization": f"Bearer {secret}"}
    return httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers)


def read_then_leave(gw: RunningGateway, secret: str, model: str, chunks: int) -> int:
    """Stream with a raw client, read `chunks` content chunks, close: the HTTP status."""
    with open_stream(gw, secret, model) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data:") and '"content"' in line:
                seen += 1
                if seen == chunks:
                    break
    return 200


def closed_rows(gw: RunningGateway, count: int) -> list[dict]:
    """The 499 rows once `count` of them are stored (the gateway notices the close async)."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in gw.rows() if r["status"] == 499]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


def test_an_abandoned_stream_is_charged_for_what_was_relayed(gw) -> None:
    key, secret = gw.create_key("leaver", budget_usd=1.0)
    assert read_then_leave(gw, secret, "large", READ_BEFORE_LEAVING) == 200
    [row] = closed_rows(gw, 1)
    assert row["key_id"] == key.id and row["error"].startswith("client_closed")
    assert row["input_tokens"] > 0
    # one token per relayed delta or the text's bound (~4 characters a token), the larger
    assert READ_BEFORE_LEAVING <= row["output_tokens"] <= text_tokens(EIGHT_WORDS)
    assert row["cost_usd"] > 0
    assert gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])


def test_abandoned_streams_run_into_the_budget(gw) -> None:
    budget = 0.001
    key, secret = gw.create_key("serial-leaver", budget_usd=budget)
    statuses: list[int] = []
    for _ in range(30):
        statuses.append(read_then_leave(gw, secret, "large", READ_BEFORE_LEAVING))
        closed_rows(gw, statuses.count(200))  # settled before the next one asks
    assert 429 in statuses
    admitted = statuses.index(429)
    assert admitted >= 1 and set(statuses[admitted:]) == {429}
    rows = closed_rows(gw, admitted)
    assert len(rows) == admitted and all(r["cost_usd"] > 0 for r in rows)
    spent = gw.gateway.limiter.spent(key.id)
    assert spent == pytest.approx(sum(r["cost_usd"] for r in rows))
    assert spent <= budget


class SlowReplay(ReplayProvider):
    """Replay that sends its answer a word at a time, like a local model decoding."""

    async def _stream(self, text: str, whole_prompt: str) -> AsyncIterator[Delta]:
        answer = self.book.reply(text)
        for i, word in enumerate(answer.split(" ")):
            await asyncio.sleep(0.02)
            yield Delta(text=word if i == 0 else " " + word)
        yield Delta(
            finish_reason="stop", usage=Usage(approx_tokens(whole_prompt), approx_tokens(answer))
        )


def local_config(tmp_path: Path) -> Config:
    """One priced local model (the replay backend) that answers the eight words."""
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(f"prompt,answer\ncount to eight,{EIGHT_WORDS}\n")
    local = ModelConfig(
        name="local",
        backend="replay",
        tier="small",
        price=Price(input=10.0, output=30.0),
        options={"outcomes": str(outcomes)},
    )
    return Config(models=[local])


def test_an_abandoned_stream_from_a_local_backend_is_charged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "replay", SlowReplay)
    with running_gateway(local_config(tmp_path), auth=True) as gw:
        key, secret = gw.create_key("local-leaver", budget_usd=1.0)
        assert read_then_leave(gw, secret, "local", READ_BEFORE_LEAVING) == 200
        [row] = closed_rows(gw, 1)
        assert row["input_tokens"] > 0 and row["output_tokens"] >= READ_BEFORE_LEAVING
        assert row["cost_usd"] > 0
        assert gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])


def read_all(gw: RunningGateway, secret: str, model: str) -> list[str]:
    """Stream to the end with a raw client: the `data:` payloads received."""
    with open_stream(gw, secret, model) as response:
        assert response.status_code == 200
        return [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]


def test_a_stream_that_fails_after_its_text_is_charged_for_the_text(gw, scripted) -> None:
    upstream, _url = scripted
    upstream.default = Script("stream_then_error", text=EIGHT_WORDS)
    key, secret = gw.create_key("half-answered", budget_usd=1.0)
    events = read_all(gw, secret, "large")
    assert sum('"content"' in e for e in events) == 8 and '"error"' in events[-1]
    row = next(r for r in gw.rows() if r["key_id"] == key.id)
    assert row["status"] == 502
    assert row["output_tokens"] >= 8 and row["cost_usd"] > 0
    assert gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])


class FailingReplay(ReplayProvider):
    """Replay that sends its answer, then breaks before it finishes."""

    async def _stream(self, text: str, whole_prompt: str) -> AsyncIterator[Delta]:
        for i, word in enumerate(self.book.reply(text).split(" ")):
            yield Delta(text=word if i == 0 else " " + word)
        raise RuntimeError("the local model crashed mid-answer")


def test_a_local_stream_that_fails_after_its_text_is_charged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "replay", FailingReplay)
    with running_gateway(local_config(tmp_path), auth=True) as gw:
        key, secret = gw.create_key("local-half", budget_usd=1.0)
        events = read_all(gw, secret, "local")
        assert '"error"' in events[-1]
        row = next(r for r in gw.rows() if r["key_id"] == key.id)
        assert row["status"] == 502 and row["output_tokens"] >= 8 and row["cost_usd"] > 0
        assert gw.gateway.limiter.spent(key.id) == pytest.approx(row["cost_usd"])
