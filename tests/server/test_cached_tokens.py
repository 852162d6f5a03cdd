"""Prompt-cache tokens: an upstream's `prompt_tokens_details.cached_tokens` reach the ledger,
are priced at each model's cached rate (the request's and the baseline's), and show in
`smallfirst report`."""

from __future__ import annotations

import json

import openai
import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.config import Config, Price
from smallfirst.ledger.report import summarize
from smallfirst.testing import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

MESSAGES = [{"role": "user", "content": "Say hi"}]
SMALL = Price(input=1.0, output=2.0, cached_input=0.25)
LARGE = Price(input=10.0, output=30.0, cached_input=1.0)


def cached_config(base_url: str, ledger_url: str) -> Config:
    config = scripted_config(base_url, ledger_url=ledger_url)
    for model, price in zip(config.models, (SMALL, LARGE), strict=True):
        model.price = price
    return config


@pytest.fixture
def gw(scripted, tmp_path):
    upstream, base_url = scripted
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_gateway(cached_config(base_url, url)) as running:
        running.upstream = upstream
        running.ledger_url = url
        yield running


@pytest.mark.parametrize("stream", [False, True])
def test_cached_prompt_tokens_are_charged_at_the_cached_rate(gw, stream: bool) -> None:
    gw.upstream.enqueue(Script(text="hi", prompt_tokens=1000, cached_tokens=800))
    client = gw.client()
    if stream:
        for _ in client.chat.completions.create(model="small", messages=MESSAGES, stream=True):
            pass
    else:
        answer = client.chat.completions.create(model="small", messages=MESSAGES)
        assert answer.usage.prompt_tokens_details.cached_tokens == 800
    [row] = gw.rows()
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (1000, 800, 1)
    assert row["cost_usd"] == pytest.approx((200 * 1.0 + 800 * 0.25 + 1 * 2.0) / 1e6)
    assert row["baseline_cost_usd"] == pytest.approx((200 * 10.0 + 800 * 1.0 + 1 * 30.0) / 1e6)


def test_a_model_without_a_cached_rate_charges_cached_tokens_as_input(scripted) -> None:
    upstream, base_url = scripted
    upstream.enqueue(Script(text="hi", prompt_tokens=1000, cached_tokens=800))
    with running_gateway(scripted_config(base_url)) as gw:
        gw.client().chat.completions.create(model="small", messages=MESSAGES)
        [row] = gw.rows()
    assert row["cached_input_tokens"] == 800
    assert row["cost_usd"] == pytest.approx((1000 * 1.0 + 1 * 2.0) / 1e6)


def test_more_cached_than_prompt_tokens_is_a_502_naming_the_field(gw) -> None:
    gw.upstream.enqueue(Script(text="hi", prompt_tokens=10, cached_tokens=11))
    raw = gw.client().chat.completions.with_raw_response
    with pytest.raises(openai.APIStatusError) as failed:
        raw.create(model="small", messages=MESSAGES)
    assert failed.value.status_code == 502
    assert "cached_tokens" in str(failed.value)


def test_report_shows_cached_tokens(gw) -> None:
    gw.upstream.enqueue(
        Script(text="a", prompt_tokens=100, cached_tokens=60),
        Script(text="b", prompt_tokens=100, cached_tokens=30),
    )
    client = gw.client()
    for _ in range(2):
        client.chat.completions.create(model="small", messages=MESSAGES)
    gw.rows()  # flushed
    summary = summarize(gw.ledger.store)
    assert summary["totals"]["cached_input_tokens"] == 90
    assert summary["models"][0]["cached_input_tokens"] == 90
    runner = CliRunner()
    table = runner.invoke(app, ["report", "--ledger", gw.ledger_url])
    assert table.exit_code == 0, table.output
    assert "cached in" in table.stdout and "cached input tokens 90" in table.stdout
    data = json.loads(runner.invoke(app, ["report", "--ledger", gw.ledger_url, "--json"]).stdout)
    assert data["totals"]["cached_input_tokens"] == 90
