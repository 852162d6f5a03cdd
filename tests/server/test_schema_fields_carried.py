"""Off the pass-through (a cascade, the Responses API), the upstream gets a structured-output
request and its token limit exactly as the client wrote them: the schema's `name`,
`description` and `strict` (false stays false, absent stays absent), and
`max_completion_tokens` under that name, as the Responses API's `max_output_tokens` is too
(official openai SDK, live gateway, real scripted upstreams)."""

from __future__ import annotations

import pytest

from smallfirst.config import CascadeConfig, ModelConfig
from smallfirst.testing import BackgroundServer, Script
from smallfirst.testing.anthropic_scripted import ScriptedAnthropic
from tests.server.gateway_helpers import running_gateway, scripted_config

pytestmark = pytest.mark.slow

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
ASK = [{"role": "user", "content": "Where is the Eiffel tower?"}]


@pytest.fixture
def gw(scripted, tmp_path):
    upstream, base_url = scripted
    upstream.default = Script(text='{"city": "Paris"}')
    config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    config.cascades["ladder"] = CascadeConfig(rungs=["small", "large"])
    with running_gateway(config) as running:
        running.upstream = upstream
        yield running


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "place", "schema": SCHEMA, "strict": False},
        {"name": "place", "description": "Where it is", "schema": SCHEMA, "strict": True},
        {"name": "place", "schema": SCHEMA},
    ],
)
@pytest.mark.parametrize("model", ["cascade-ladder", "small"])
def test_a_chat_schema_reaches_the_upstream_as_sent(gw, spec, model) -> None:
    answer = gw.client().chat.completions.create(
        model=model,
        messages=ASK,
        response_format={"type": "json_schema", "json_schema": spec},
        max_tokens=20,
    )
    assert answer.choices[0].message.content == '{"city": "Paris"}'
    sent = gw.upstream.received[-1]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": spec}


def test_a_responses_text_format_reaches_the_upstream_as_sent(gw) -> None:
    response = gw.client().responses.create(
        model="small",
        input="Where is the Eiffel tower?",
        text={
            "format": {"type": "json_schema", "name": "place", "schema": SCHEMA, "strict": False}
        },
    )
    assert response.output_text == '{"city": "Paris"}'
    assert gw.upstream.received[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": SCHEMA, "strict": False},
    }
    gw.client().responses.create(
        model="cascade-ladder",
        input="Where?",
        text={"format": {"type": "json_schema", "name": "where", "schema": SCHEMA}},
    )
    assert gw.upstream.received[-1]["response_format"]["json_schema"] == {
        "name": "where",
        "schema": SCHEMA,
    }


@pytest.mark.parametrize("model", ["cascade-ladder", "small"])
def test_the_token_limit_keeps_the_name_the_client_gave_it(gw, model) -> None:
    client = gw.client()
    client.chat.completions.create(model=model, messages=ASK, max_completion_tokens=12)
    sent = gw.upstream.received[-1]
    assert sent["max_completion_tokens"] == 12 and "max_tokens" not in sent
    client.chat.completions.create(model=model, messages=ASK, max_tokens=13)
    sent = gw.upstream.received[-1]
    assert sent["max_tokens"] == 13 and "max_completion_tokens" not in sent


@pytest.mark.parametrize("model", ["cascade-ladder", "small"])
def test_max_output_tokens_reaches_an_openai_upstream_as_max_completion_tokens(gw, model) -> None:
    """Responses' limit counts reasoning tokens too, as chat's `max_completion_tokens` does
    (o-series and gpt-5 models refuse `max_tokens`)."""
    gw.client().responses.create(model=model, input="Where?", max_output_tokens=12)
    sent = gw.upstream.received[-1]
    assert sent["max_completion_tokens"] == 12 and "max_tokens" not in sent


def test_max_output_tokens_reaches_an_anthropic_model_as_max_tokens(
    scripted, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    _, base_url = scripted
    claude_up = ScriptedAnthropic()
    with BackgroundServer(claude_up.app) as claude:
        config = scripted_config(base_url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
        config.models.append(ModelConfig(name="claude", backend="anthropic", base_url=claude.url))
        with running_gateway(config) as running:
            running.client().responses.create(model="claude", input="Hi", max_output_tokens=12)
    assert claude_up.received[-1]["max_tokens"] == 12


def test_a_malformed_strict_is_a_400_naming_it(gw) -> None:
    import openai

    spec = {"name": "place", "schema": SCHEMA, "strict": "no"}
    with pytest.raises(openai.BadRequestError) as err:
        gw.client().chat.completions.create(
            model="cascade-ladder",
            messages=ASK,
            response_format={"type": "json_schema", "json_schema": spec},
        )
    assert err.value.body["param"] == "response_format.json_schema.strict"
    assert gw.upstream.received == []
