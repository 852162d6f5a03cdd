"""A task on a model declared `grammar: true` is held to its labels by a grammar on every
backend that can send one (an OpenAI-compatible llama.cpp server gets GBNF in `grammar`), and
one whose API has none says so with a 400 instead of running unconstrained (real local
servers)."""

import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.models.llamacpp_choice import choices_grammar
from smallfirst.models.registry import Registry
from smallfirst.tasks import Task
from smallfirst.tasks.output import constraint_for, label_choices
from smallfirst.testing import BackgroundServer, Script
from smallfirst.testing.anthropic_scripted import ScriptedAnthropic

SENTIMENT = {"kind": "classify", "name": "sentiment", "labels": ["negative", "positive"]}


async def test_classify_on_an_openai_grammar_server_sends_the_labels_as_gbnf(scripted):
    script, url = scripted
    model = ModelConfig(
        name="llama", backend="openai", base_url=url, capabilities={"grammar": True}
    )
    assert constraint_for(model) == "grammar"
    registry = Registry(Config(models=[model]))
    script.enqueue(Script(text=" positive"))
    result = await Task(**SENTIMENT).run("I love it", registry=registry)
    assert result.label == "positive" and result.attempts == 1
    (sent,) = script.received
    assert sent["grammar"] == choices_grammar(label_choices(SENTIMENT["labels"]))
    assert "response_format" not in sent
    await registry.aclose()


async def test_a_grammar_declared_on_anthropic_is_a_400_not_an_unconstrained_run(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    upstream = ScriptedAnthropic()
    with BackgroundServer(upstream.app) as server:
        model = ModelConfig(
            name="claude", backend="anthropic", base_url=server.url, capabilities={"grammar": True}
        )
        registry = Registry(Config(models=[model]))
        with pytest.raises(InvalidRequestError) as err:
            await Task(**SENTIMENT).run("I love it", registry=registry)
        await registry.aclose()
    assert err.value.param == "choices" and "Anthropic's API takes none" in err.value.message
    assert upstream.received == []
