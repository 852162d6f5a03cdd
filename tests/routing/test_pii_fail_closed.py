"""Personal data goes only to a model declared `local`; with none, the request is refused.

Real gateway, real scripted upstreams: an Ollama-like server behind the `openai` backend
(declared local) and a "cloud" one (declared not local, though the test runs it on loopback).
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from smallfirst.config import parse_config
from smallfirst.errors import ConfigError
from smallfirst.testing import BackgroundServer, Script, ScriptedUpstream
from tests.server.gateway_helpers import running_gateway

CARD = "My card is 4111 1111 1111 1111, why was the payment declined?"
ROUTER = """
routers:
  auto:
    kind: rules
    rules:
      - {keywords: [contract], model: cloud}
    default: cloud
"""


@pytest.fixture
def upstreams() -> Iterator[dict[str, tuple[ScriptedUpstream, str]]]:
    ollama, cloud = ScriptedUpstream(), ScriptedUpstream()
    with BackgroundServer(ollama.app) as o, BackgroundServer(cloud.app) as c:
        yield {"ollama": (ollama, o.url + "/v1"), "cloud": (cloud, c.url + "/v1")}


def _models(upstreams, with_local: bool) -> str:
    text = "models:\n"
    if with_local:
        text += (
            f"  - {{name: ollama, backend: openai, base_url: {upstreams['ollama'][1]}, "
            "upstream_model: 'llama3.2:1b', tier: small, capabilities: {local: true}}\n"
        )
    text += (
        f"  - {{name: cloud, backend: openai, base_url: {upstreams['cloud'][1]}, "
        "tier: large, price: {input: 2.5, output: 10}, capabilities: {local: false}}\n"
    )
    return text


def _ask(gw, content: str):
    return gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": content}]
    )


def test_pii_goes_to_the_declared_local_openai_model(upstreams) -> None:
    config = parse_config(_models(upstreams, with_local=True) + ROUTER)
    with running_gateway(config) as gw:
        pii = _ask(gw, CARD)
        plain = _ask(gw, "Tell me a story about a brave little lighthouse.")
        assert pii.headers["x-smallfirst-model"] == "ollama"
        assert plain.headers["x-smallfirst-model"] == "cloud"
        assert [r["model"] for r in upstreams["ollama"][0].received] == ["llama3.2:1b"]
        assert len(upstreams["cloud"][0].received) == 1
        row = next(r for r in gw.rows() if r["model"] == "ollama")
        assert row["route_reason"] == "rule: pii (card) -> local only"


def test_pii_with_no_local_model_is_refused_not_sent_to_the_cloud(upstreams) -> None:
    config = parse_config(_models(upstreams, with_local=False) + ROUTER)
    with running_gateway(config) as gw:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            _ask(gw, CARD)
        error = refused.value.body
        assert refused.value.status_code == 403
        assert error["code"] == "personal_data_needs_local_model"
        assert "personal data (card number)" in error["message"]
        assert "capabilities: {local: true}" in error["message"]
        assert upstreams["cloud"][0].received == []
        answered = _ask(gw, "Tell me a story about a brave little lighthouse.")
        assert answered.headers["x-smallfirst-model"] == "cloud"


def test_a_cloud_model_named_as_local_model_fails_when_the_config_loads(upstreams) -> None:
    router = ROUTER.replace("kind: rules\n", "kind: rules\n    local_model: cloud\n")
    with pytest.raises(
        ConfigError, match=r":\d+: routers\.auto\.local_model: .*not declared local"
    ):
        parse_config(_models(upstreams, with_local=True) + router, source="smallfirst.yaml")


def test_switching_pii_routing_off_is_explicit(upstreams) -> None:
    router = ROUTER.replace("kind: rules\n", "kind: rules\n    pii_to_local: false\n")
    config = parse_config(_models(upstreams, with_local=False) + router)
    with running_gateway(config) as gw:
        assert _ask(gw, CARD).headers["x-smallfirst-model"] == "cloud"


def test_pii_never_falls_back_to_a_cloud_model_when_the_local_one_fails(upstreams) -> None:
    ollama = upstreams["ollama"][0]
    ollama.default = Script(behaviour="error", status=503)
    fallbacks = (
        "failover: {retries: 1, backoff_s: 0, failure_threshold: 10,"
        " fallbacks: {ollama: [cloud]}}\n"
    )
    config = parse_config(_models(upstreams, with_local=True) + ROUTER + fallbacks)
    with running_gateway(config) as gw:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as failed:
                response = gw.client().chat.completions.create(
                    model="auto", messages=[{"role": "user", "content": CARD}], stream=stream
                )
                list(response) if stream else None
            assert failed.value.status_code >= 500
        assert upstreams["cloud"][0].received == []
        assert len(ollama.received) == 4  # two tries per request, both on the local model


CASCADE = "cascades:\n  c: {rungs: [ollama, cloud], router: auto}\n"


def test_a_cascade_keeps_personal_data_on_its_local_rungs(upstreams) -> None:
    ollama = upstreams["ollama"][0]
    ollama.enqueue(Script(text="local answer"))
    config = parse_config(_models(upstreams, with_local=True) + ROUTER + CASCADE)
    with running_gateway(config) as gw:
        answered = _ask_model(gw, "cascade-c", CARD)
        assert answered.choices[0].message.content == "local answer"
        ollama.default = Script(behaviour="error", status=503)
        with pytest.raises(openai.APIStatusError) as failed:
            _ask_model(gw, "cascade-c", CARD)
        assert failed.value.status_code >= 500
        assert upstreams["cloud"][0].received == []


def test_a_cascade_refuses_personal_data_with_no_local_model(upstreams) -> None:
    cascade = CASCADE.replace("[ollama, cloud]", "[cloud]")
    config = parse_config(_models(upstreams, with_local=False) + ROUTER + cascade)
    with running_gateway(config) as gw:
        with pytest.raises(openai.PermissionDeniedError, match="no model is declared local"):
            _ask_model(gw, "cascade-c", CARD)
        assert upstreams["cloud"][0].received == []


def _ask_model(gw, model: str, content: str):
    return gw.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}]
    )


def test_a_cloud_judge_never_sees_personal_data(upstreams) -> None:
    ollama = upstreams["ollama"][0]
    ollama.enqueue(Script(text="local answer"))
    cascade = (
        "cascades:\n  c:\n    rungs: [ollama, cloud]\n    router: auto\n"
        "    checks: [{kind: judge, model: cloud}]\n"
    )
    config = parse_config(_models(upstreams, with_local=True) + ROUTER + cascade)
    with running_gateway(config) as gw:
        answered = _ask_model(gw, "cascade-c", CARD)
        assert answered.choices[0].message.content == "local answer"
        assert upstreams["cloud"][0].received == []
