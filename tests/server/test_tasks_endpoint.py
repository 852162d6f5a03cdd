"""POST /v1/tasks/{name} on the real gateway in front of a scripted upstream."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.testing.scripted import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

SPEC = "kind: classify\nlabels:\n  negative: unhappy\n  positive: happy\n"


@pytest.fixture
def gw(scripted, tmp_path):
    upstream, base_url = scripted
    (tmp_path / "sentiment.yaml").write_text(SPEC)
    (tmp_path / "broken.yaml").write_text("kind: classify\nlabels: [a]\n")
    config = scripted_config(base_url)
    config.tasks = {"sentiment": str(tmp_path / "sentiment.yaml"), "broken": "broken.yaml"}
    with running_gateway(config) as running:
        yield upstream, running


def test_runs_a_configured_task_and_records_it(gw):
    upstream, running = gw
    upstream.enqueue(Script(text='{"label": "positive"}'))
    response = httpx.post(
        running.url + "/v1/tasks/sentiment", json={"input": "I love it", "model": "large"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "positive" and body["task"] == "sentiment"
    assert body["model"] == "large" and body["attempts"] == 1
    assert response.headers["x-smallfirst-model"] == "large"
    assert upstream.received[0]["model"] == "up-large"
    rows = running.rows()
    assert rows[-1]["endpoint"] == "tasks" and rows[-1]["status"] == 200


def test_default_model_and_router_names(gw):
    upstream, running = gw
    upstream.enqueue(Script(text="negative"), Script(text="negative"))
    plain = httpx.post(running.url + "/v1/tasks/sentiment", json={"input": "meh"}).json()
    assert plain["model"] == "small"
    routed = httpx.post(
        running.url + "/v1/tasks/sentiment", json={"input": "meh", "model": "auto"}
    ).json()
    assert routed["router"] == "auto"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/tasks/nope", {"input": "x"}, 404, "not configured. Configured tasks: broken"),
        ("/v1/tasks/sentiment", {"text": "x"}, 400, "input"),
        ("/v1/tasks/sentiment", {"input": ""}, 400, "input"),
        ("/v1/tasks/sentiment", {"input": "x", "model": "nope"}, 404, "'nope' does not exist"),
        ("/v1/tasks/broken", {"input": "x"}, 500, "labels"),
    ],
)
def test_errors_are_openai_shaped(gw, path, body, status, needle):
    _upstream, running = gw
    response = httpx.post(running.url + path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_invalid_output_twice_is_a_502_task_output_error(gw):
    upstream, running = gw
    upstream.enqueue(Script(text="dunno"), Script(text="dunno"))
    response = httpx.post(running.url + "/v1/tasks/sentiment", json={"input": "x"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "invalid_task_output"
