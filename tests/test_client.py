"""`smallfirst.Client` runs the gateway's flow in process: routing, the failover policy and
ledger rows (request and hops) priced against the baseline, with real scripted upstreams and
a real SQLite ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from smallfirst import AsyncClient, Client
from smallfirst.errors import InvalidRequestError, ModelNotFoundError
from smallfirst.ledger import Ledger
from smallfirst.testing import Script
from tests.test_target import config_for, upstreams  # noqa: F401 - the fixture


def rows(url: str) -> list[dict]:
    ledger = Ledger(url)
    try:
        return ledger.store.rows()
    finally:
        ledger.close()


def test_a_chat_is_routed_answered_and_ledgered(upstreams, tmp_path: Path) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].enqueue(Script("error", status=503), Script("reset"))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Client(config_for(urls), ledger_url=url) as client:
        answer = client.chat("hello", model="auto", max_tokens=8)
    assert (answer.text, answer.model) == ("from small", "small")
    stored = rows(url)
    request = [r for r in stored if r["kind"] == "request"]
    hops = [r for r in stored if r["kind"] == "hop"]
    assert len(request) == 1 and request[0]["request_id"] == answer.request_id
    row = request[0]
    assert (row["requested_model"], row["model"], row["router"], row["status"]) == (
        "auto",
        "small",
        "auto",
        200,
    )
    assert row["cost_usd"] == pytest.approx(answer.cost_usd)
    assert row["baseline_model"] == "large" and row["baseline_cost_usd"] > row["cost_usd"]
    assert [(h["outcome"], h["model"]) for h in hops] == [
        ("error", "small"),
        ("error", "small"),
        ("ok", "small"),
    ]


def test_a_stream_is_charged_for_what_it_delivered(upstreams, tmp_path: Path) -> None:  # noqa: F811
    _, urls = upstreams
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Client(config_for(urls), ledger_url=url) as client:
        text = "".join(d.text for d in client.stream("hello", model="small") if d.text)
    assert text == "from small"
    (row,) = rows(url)
    assert (row["status"], row["input_tokens"], row["output_tokens"]) == (200, 5, 2)


def test_a_stream_left_early_is_still_charged(upstreams, tmp_path: Path) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(text="one two three four", prompt_tokens=5)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Client(config_for(urls), ledger_url=url) as client:
        deltas = client.stream("hello", model="small")
        next(d for d in deltas if d.text)
        deltas.close()
    (row,) = rows(url)
    assert row["status"] == 499 and row["output_tokens"] >= 1 and row["cost_usd"] > 0


def test_a_cascade_charges_every_rung(upstreams, tmp_path: Path) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["small"].default = Script(text="maybe", prompt_tokens=5, completion_tokens=2)
    scripted["large"].default = Script(text="yes", prompt_tokens=5, completion_tokens=2)
    checks = [{"kind": "constraint", "labels": ["yes", "no"]}]
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"], "checks": checks}})
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Client(config, ledger_url=url) as client:
        answer = client.chat("yes or no?", model="cascade-ladder")
    assert (answer.text, answer.model, answer.escalations) == ("yes", "large", 1)
    stored = rows(url)
    (row,) = [r for r in stored if r["kind"] == "request"]
    assert row["model"] == "large" and row["cost_usd"] == pytest.approx(answer.cost_usd)
    assert len([r for r in stored if r["kind"] == "hop"]) == len(answer.hops)


def test_bad_names_and_parameters_are_refused_and_ledgered(upstreams, tmp_path: Path) -> None:  # noqa: F811
    _, urls = upstreams
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Client(config_for(urls), ledger_url=url) as client:
        with pytest.raises(ModelNotFoundError, match="'nope' does not exist"):
            client.chat("hello", model="nope")
        with pytest.raises(InvalidRequestError, match="unknown parameter"):
            client.chat("hello", model="small", max_token=3)
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
            client.chat([{"role": "robot", "content": "x"}], model="small")
    (row,) = rows(url)
    assert (row["requested_model"], row["status"]) == ("nope", 404)


def test_the_async_client_without_a_ledger(upstreams) -> None:  # noqa: F811
    _, urls = upstreams

    async def go() -> str:
        async with AsyncClient(config_for(urls), ledger=False) as client:
            answer = await client.complete("say hi", model="large", max_tokens=4)
            return answer.text

    assert asyncio.run(go()) == "from large"


PLACE = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_a_completion_held_to_a_schema_reaches_a_chat_model_as_its_response_format(
    upstreams,  # noqa: F811
) -> None:
    """OpenAI's /completions has no `response_format` (others ignore it there), so a
    completion held to JSON goes to a chat-style model as a chat request: the prompt the one
    user turn, the schema in `response_format`."""
    scripted, urls = upstreams
    scripted["small"].default = Script(text='{"city": "Paris"}')
    with Client(config_for(urls), ledger=False) as client:
        answer = client.complete("Where is the Eiffel tower?", model="small", json_schema=PLACE)
        assert answer.text == '{"city": "Paris"}'
        sent = scripted["small"].received[-1]
        assert sent["messages"] == [{"role": "user", "content": "Where is the Eiffel tower?"}]
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": PLACE, "strict": True},
        }
        client.complete("A JSON object:", model="auto", json_object=True)
        assert scripted["small"].received[-1]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("held", [{"json_schema": PLACE}, {"json_object": True}])
def test_a_completion_held_to_json_on_a_completion_style_model_is_refused(
    upstreams,  # noqa: F811
    held,
) -> None:
    scripted, urls = upstreams
    config = config_for(urls)
    config.models[0].prompt_style = "completion"
    with Client(config, ledger=False) as client:
        with pytest.raises(InvalidRequestError) as err:
            client.complete("Where is the Eiffel tower?", model="small", **held)
        assert err.value.param == "response_format" and "'small'" in err.value.message
        assert scripted["small"].received == []
        answer = client.complete("Where is the Eiffel tower?", model="auto", **held)
    assert answer.model == "large" and "response_format" in scripted["large"].received[-1]
    assert scripted["small"].received == []
