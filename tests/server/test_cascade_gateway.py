"""`model: "cascade-<name>"` through the real gateway: answers, hop rows, report."""

from __future__ import annotations

import json

import openai
import pytest
from typer.testing import CliRunner

from smallfirst.cli import app as cli_app
from smallfirst.testing import Script
from tests.routing.upstreams import registry_for, scripted_models
from tests.server.gateway_helpers import running_gateway

TIERS = {"small": "small", "large": "large"}
CASCADE = {
    "rungs": ["small", "large"],
    "checks": [{"kind": "constraint", "labels": ["positive", "negative", "neutral"]}],
}


@pytest.fixture
def cascade_gateway(tmp_path):
    with scripted_models("small", "large") as (upstreams, urls):
        upstreams["small"].default = Script(text="positive")
        upstreams["large"].default = Script(text="negative", prompt_tokens=50)
        config = registry_for(urls, TIERS, cascades={"sentiment": CASCADE}).config
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        with running_gateway(config, ledger_url=ledger_url) as running:
            yield upstreams, running, ledger_url


def ask(running, text: str = "great day", **options):
    return running.client().chat.completions.with_raw_response.create(
        model="cascade-sentiment", messages=[{"role": "user", "content": text}], **options
    )


def test_a_kept_answer_is_one_request_row_with_its_hops(cascade_gateway):
    upstreams, running, _ = cascade_gateway
    raw = ask(running)
    reply = raw.parse()
    assert reply.choices[0].message.content == "positive"
    assert raw.headers["x-smallfirst-model"] == "small"
    assert raw.headers["x-smallfirst-route"] == "cascade-sentiment"
    request_id = raw.headers["x-smallfirst-request-id"]
    rows = [r for r in running.rows() if r["request_id"] == request_id]
    request = next(r for r in rows if r["kind"] == "request")
    hops = [r for r in rows if r["kind"] == "hop"]
    assert [(h["hop"], h["step"], h["outcome"]) for h in hops] == [
        (1, "answer", "ok"),
        (2, "check", "passed"),
        (3, "accept", "kept"),
    ]
    assert request["model"] == "small" and request["requested_model"] == "cascade-sentiment"
    assert request["cost_usd"] == pytest.approx(sum(h["cost_usd"] for h in hops))
    assert not upstreams["large"].received


def test_an_escalation_charges_both_rungs_and_shows_in_the_report(cascade_gateway):
    upstreams, running, ledger_url = cascade_gateway
    upstreams["small"].enqueue(Script(text="no idea"))
    raw = ask(running, "meh")
    assert raw.parse().choices[0].message.content == "negative"
    assert raw.headers["x-smallfirst-model"] == "large"
    ask(running)  # kept on the small rung
    request_id = raw.headers["x-smallfirst-request-id"]
    rows = [r for r in running.rows() if r["request_id"] == request_id]
    steps = [r["step"] for r in rows if r["kind"] == "hop"]
    assert steps == ["answer", "check", "escalate", "answer", "accept"]
    check = next(r for r in rows if r["step"] == "check")
    assert check["outcome"] == "failed" and "not one of the labels" in check["route_reason"]
    request = next(r for r in rows if r["kind"] == "request")
    assert request["cost_usd"] == pytest.approx(
        sum(r["cost_usd"] for r in rows if r["kind"] == "hop")
    )
    assert "escalation" in request["route_reason"]
    result = CliRunner().invoke(cli_app, ["report", "--ledger", ledger_url, "--json"])
    assert result.exit_code == 0, result.output
    routes = {r["route"]: r for r in json.loads(result.stdout)["escalations"]}
    route = routes["cascade-sentiment"]
    assert route["requests"] == 2 and route["escalated"] == 1 and route["escalation_rate"] == 0.5
    large_answer = next(r for r in rows if r["step"] == "answer" and r["model"] == "large")
    assert route["escalation_cost_usd"] == pytest.approx(large_answer["cost_usd"])
    table = CliRunner().invoke(cli_app, ["report", "--ledger", ledger_url])
    assert "escalations per route" in table.stdout and "50.0%" in table.stdout


def test_a_cascade_stream_sends_the_accepted_answer(cascade_gateway):
    upstreams, running, _ = cascade_gateway
    upstreams["small"].enqueue(Script(text=""))
    stream = running.client().chat.completions.create(
        model="cascade-sentiment",
        messages=[{"role": "user", "content": "hm"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "negative" and chunks[-1].usage.prompt_tokens == 50


def test_when_every_rung_fails_the_error_is_clear_and_the_hops_are_kept(cascade_gateway):
    upstreams, running, _ = cascade_gateway
    for upstream in upstreams.values():
        upstream.default = Script("error", status=500)
    with pytest.raises(openai.APIStatusError) as info:
        ask(running)
    assert info.value.status_code == 502
    assert "every candidate model failed" in info.value.body["message"]
    request_id = info.value.response.headers["x-smallfirst-request-id"]
    rows = [r for r in running.rows() if r["request_id"] == request_id]
    request = next(r for r in rows if r["kind"] == "request")
    assert request["status"] == 502
    failures = [r for r in rows if r["step"] == "failure"]
    assert len(failures) == 6 and {r["model"] for r in failures} == {"small", "large"}
    assert all(r["status"] == 502 and r["error"].startswith("upstream_error") for r in failures)


def test_completions_and_unknown_cascades(cascade_gateway):
    _, running, _ = cascade_gateway
    completion = running.client().completions.create(model="cascade-sentiment", prompt="nice")
    assert completion.choices[0].text == "positive"
    with pytest.raises(openai.NotFoundError):
        running.client().chat.completions.create(
            model="cascade-missing", messages=[{"role": "user", "content": "x"}]
        )


async def test_concurrent_requests_each_end_once_and_the_ledger_tells_the_story(cascade_gateway):
    import asyncio

    upstreams, running, _ = cascade_gateway
    upstreams["small"].enqueue(
        *[Script("error", status=500), Script(text="hmm"), Script("reset"), Script("malformed")] * 6
    )
    upstreams["large"].enqueue(*[Script("error", status=429, retry_after=0.01)] * 4)
    client = running.async_client()

    async def one(i: int):
        try:
            return await client.chat.completions.with_raw_response.create(
                model="cascade-sentiment", messages=[{"role": "user", "content": f"q{i}"}]
            )
        except openai.APIStatusError as exc:
            return exc

    outcomes = await asyncio.gather(*(one(i) for i in range(24)))
    ids = [o.response.headers["x-smallfirst-request-id"] if isinstance(o, openai.APIStatusError)
           else o.headers["x-smallfirst-request-id"] for o in outcomes]  # fmt: skip
    assert len(set(ids)) == 24
    rows = running.rows()
    for request_id, outcome in zip(ids, outcomes, strict=True):
        mine = [r for r in rows if r["request_id"] == request_id]
        requests = [r for r in mine if r["kind"] == "request"]
        assert len(requests) == 1
        hops = sorted(r["hop"] for r in mine if r["kind"] == "hop")
        assert hops == list(range(1, len(hops) + 1)) and hops
        last = max((r for r in mine if r["kind"] == "hop"), key=lambda r: r["hop"])
        if isinstance(outcome, openai.APIStatusError):
            assert requests[0]["status"] == outcome.status_code and last["step"] != "accept"
        else:
            assert requests[0]["status"] == 200 and last["step"] == "accept"
            assert last["model"] == outcome.headers["x-smallfirst-model"]
    received = len(upstreams["small"].received) + len(upstreams["large"].received)
    calls = [
        r
        for r in rows
        if r["kind"] == "hop"
        and r["step"] in ("answer", "failure")
        and r["outcome"] != "cooling_down"
    ]
    assert received == len(calls)
