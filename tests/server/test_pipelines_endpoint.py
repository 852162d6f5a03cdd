"""POST /v1/pipelines/{name} on the real gateway in front of a scripted upstream."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.testing.scripted import Script
from tests.server.gateway_helpers import running_gateway, scripted_config

PIPELINE = """
name: notes
steps:
  - name: summary
    model: small
    task: {kind: summarize, max_words: 20}
  - name: deep
    model: large
    prompt: "Analyse: {summary}"
    run_if: {input_chars_over: 40}
"""


@pytest.fixture
def gw(scripted, tmp_path):
    upstream, base_url = scripted
    (tmp_path / "notes.yaml").write_text(PIPELINE)
    (tmp_path / "broken.yaml").write_text("steps: []\n")
    config = scripted_config(base_url)
    config.pipelines = {"notes": "notes.yaml", "broken": "broken.yaml"}
    with running_gateway(config) as running:
        yield upstream, running


def test_runs_steps_and_records_a_request_with_hops(gw):
    upstream, running = gw
    upstream.enqueue(Script(text="short summary"), Script(text="deep view"))
    response = httpx.post(running.url + "/v1/pipelines/notes", json={"input": "x" * 100})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["steps"]["summary"]["model"] == "small"
    assert body["steps"]["deep"]["output"] == "deep view"
    assert [r["model"] for r in upstream.received] == ["up-small", "up-large"]
    assert response.headers["x-smallfirst-model"] == "large"
    rows = [r for r in running.rows() if r["request_id"] == body["request_id"]]
    request = next(r for r in rows if r["kind"] == "request")
    hops = sorted((r for r in rows if r["kind"] == "hop"), key=lambda r: r["hop"])
    assert request["endpoint"] == "pipeline" and request["requested_model"] == "pipeline:notes"
    assert [(h["step"], h["outcome"]) for h in hops] == [("summary", "ok"), ("deep", "ok")]
    assert request["cost_usd"] == pytest.approx(sum(h["cost_usd"] for h in hops))
    assert float(response.headers["x-smallfirst-cost-usd"]) == pytest.approx(body["cost_usd"])


def test_short_input_skips_the_large_step(gw):
    upstream, running = gw
    response = httpx.post(running.url + "/v1/pipelines/notes", json={"input": "short"})
    assert response.json()["steps"]["deep"]["status"] == "skipped"
    assert [r["model"] for r in upstream.received] == ["up-small"]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/pipelines/nope", {"input": "x"}, 404, "Configured pipelines: broken, notes"),
        ("/v1/pipelines/notes", {"text": "x"}, 400, "input"),
        ("/v1/pipelines/notes", {"input": 5}, 400, "input"),
        ("/v1/pipelines/broken", {"input": "x"}, 500, "steps"),
    ],
)
def test_errors_are_openai_shaped(gw, path, body, status, needle):
    _upstream, running = gw
    response = httpx.post(running.url + path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]
