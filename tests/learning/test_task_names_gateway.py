"""Every endpoint of a live gateway with `learn:` names each request's task in its ledger
row: chat, completions, /v1/messages, /v1/responses, a cascade and a task endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from smallfirst.config import CascadeConfig, LearnConfig
from smallfirst.testing.scripted import Script
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

SYSTEM = "You sort bank messages into intents."
SPEC = "kind: classify\nlabels:\n  negative: unhappy\n  positive: happy\n"


@pytest.fixture
def gw(scripted, tmp_path) -> Iterator[tuple[object, RunningGateway]]:
    upstream, base_url = scripted
    (tmp_path / "sentiment.yaml").write_text(SPEC)
    config = scripted_config(base_url).model_copy(
        update={
            "learn": LearnConfig(shadow_rate=0, audit_rate=0),
            "cascades": {"cheap": CascadeConfig(rungs=["small", "large"])},
            "tasks": {"sentiment": str(tmp_path / "sentiment.yaml")},
        }
    )
    with running_gateway(config) as running:
        yield upstream, running


def tasks_by_endpoint(gw: RunningGateway) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for row in gw.rows(kind="request"):
        found.setdefault(row["endpoint"], []).append(row["task"])
    return found


def test_each_endpoint_names_the_task(gw) -> None:
    upstream, running = gw
    client = running.client()
    upstream.default = Script(text="positive")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "card?"}]
    client.chat.completions.create(model="small", messages=messages)
    client.chat.completions.create(model="small", messages=messages, metadata={"task": "intents"})
    client.with_options(default_headers={"x-smallfirst-task": "by-header"}).completions.create(
        model="small", prompt="Complete: "
    )
    client.responses.create(model="small", instructions=SYSTEM, input="card?")
    answered = httpx.post(
        running.url + "/v1/messages",
        json={"model": "small", "max_tokens": 8, "system": SYSTEM,
              "messages": [{"role": "user", "content": "card?"}]},
    )  # fmt: skip
    assert answered.status_code == 200, answered.text
    client.chat.completions.create(model="cascade-cheap", messages=messages)
    upstream.enqueue(Script(text='{"label": "positive"}'))
    ran = httpx.post(running.url + "/v1/tasks/sentiment", json={"input": "I love it"})
    assert ran.status_code == 200, ran.text
    found = tasks_by_endpoint(running)
    fingerprint = found["chat"][0]
    assert fingerprint is not None and fingerprint.startswith("t-")
    assert found["chat"][1:] == ["intents", "cascade-cheap"]
    assert found["completions"] == ["by-header"]
    # the same system prompt and user prompt through other APIs: the same task
    assert found["responses"] == [fingerprint]
    assert found["messages"] == [fingerprint]
    assert found["tasks"] == ["sentiment"]


def test_a_bad_task_name_is_a_400_and_a_ledger_row(gw) -> None:
    _upstream, running = gw
    answered = httpx.post(
        running.url + "/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": "hi"}],
              "metadata": {"task": "x" * 300}},
    )  # fmt: skip
    assert answered.status_code == 400
    assert answered.json()["error"]["param"] == "metadata.task"
    refused = httpx.post(
        running.url + "/v1/messages",
        headers={"x-smallfirst-task": "a" * 150},
        json={"model": "small", "max_tokens": 8, "messages": [{"role": "user", "content": "q"}]},
    )
    assert refused.status_code == 400 and refused.json()["type"] == "error"
    assert [row["status"] for row in running.rows(kind="request")] == [400, 400]
