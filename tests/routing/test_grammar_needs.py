"""`choices` and `grammar` are needs like tools or images: routers, cascades and a direct
request send them only to a model that takes a grammar, else a 400 names the field and the
models lacking it (real scripted upstreams, the in-process `Client` too)."""

from __future__ import annotations

import pytest

from smallfirst import Client
from smallfirst.errors import InvalidRequestError
from smallfirst.models.llamacpp_choice import choices_grammar
from smallfirst.models.registry import Registry
from smallfirst.routing.requirements import Need, needs_of
from smallfirst.target import Targets
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, CompletionRequest, GenerationParams, Message
from tests.test_target import config_for, upstreams  # noqa: F401 - the fixture

LABELS = ["yes", "no"]


def labelled(**params) -> ChatRequest:
    return ChatRequest([Message("user", "Yes or no?")], GenerationParams(max_tokens=2, **params))


def test_choices_and_a_grammar_are_the_grammar_need() -> None:
    assert needs_of(labelled(choices=LABELS)) == [Need("grammar", "choices")]
    assert needs_of(CompletionRequest("x", GenerationParams(grammar="root ::= x"))) == [
        Need("grammar", "grammar")
    ]
    assert needs_of(labelled()) == []


def test_auto_passes_over_a_model_without_grammar_to_one_that_takes_it(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["large"].default = Script(text="yes")
    config = config_for(urls)
    config.models[1].capabilities.grammar = True  # large: a llama.cpp server
    target = Targets(Registry(config)).resolve("auto")
    route = target.route(labelled(choices=LABELS))
    assert route.model.name == "large" and route.decision is not None
    assert "small lacks grammar" in route.decision.reason
    answer = target.generate_sync(labelled(choices=LABELS))
    assert (answer.text, answer.model) == ("yes", "large")
    assert scripted["large"].received[0]["grammar"] == choices_grammar(LABELS)
    assert scripted["small"].received == []


def test_without_a_grammar_model_auto_a_cascade_and_a_model_are_400s(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    targets = Targets(Registry(config))
    with pytest.raises(InvalidRequestError) as err:
        targets.resolve("auto").route(labelled(choices=LABELS))
    assert err.value.param == "choices"
    assert "small lacks grammar" in err.value.message and "large lacks grammar" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        targets.resolve("cascade-ladder").generate_sync(labelled(grammar='root ::= "yes"'))
    assert err.value.param == "grammar" and "large lacks grammar" in err.value.message
    with pytest.raises(InvalidRequestError) as err:
        targets.resolve("small").route(labelled(choices=LABELS))
    assert err.value.param == "choices" and "'small' does not declare it" in err.value.message
    assert scripted["small"].received == [] and scripted["large"].received == []


def test_a_cascade_climbs_only_rungs_that_take_the_grammar(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    scripted["large"].default = Script(text="no")
    config = config_for(urls, cascades={"ladder": {"rungs": ["small", "large"]}})
    config.models[1].capabilities.grammar = True
    answer = (
        Targets(Registry(config)).resolve("cascade-ladder").generate_sync(labelled(choices=LABELS))
    )
    assert (answer.text, answer.model) == ("no", "large")
    assert (answer.hops[0].model, answer.hops[0].outcome) == ("small", "skipped")
    assert scripted["small"].received == []


def test_the_client_routes_choices_or_refuses_them_by_name(upstreams) -> None:  # noqa: F811
    scripted, urls = upstreams
    with Client(config_for(urls), ledger=False) as client:
        with pytest.raises(InvalidRequestError) as err:
            client.chat("Yes or no?", model="auto", choices=LABELS)
        assert err.value.param == "choices"
    assert scripted["small"].received == [] and scripted["large"].received == []
    scripted["large"].default = Script(text="yes")
    config = config_for(urls)
    config.models[1].capabilities.grammar = True
    with Client(config, ledger=False) as client:
        answer = client.chat("Yes or no?", model="auto", choices=LABELS)
    assert (answer.text, answer.model) == ("yes", "large")
    assert scripted["large"].received[0]["grammar"] == choices_grammar(LABELS)
