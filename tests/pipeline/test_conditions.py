"""A condition's `router` means what the same name means in the gateway: resolved by
`Targets`, its choice held to the same capability and context checks (real local upstreams)."""

from __future__ import annotations

import pytest

from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.pipeline import Pipeline, parse_pipeline
from smallfirst.target import resolve
from smallfirst.types import ChatRequest, Message

LONG = "the quarterly budget review " * 20  # ~140 tokens


def escalating(router: str) -> Pipeline:
    step = {
        "name": "s",
        "model": "small",
        "prompt": "Summarise: {input}",
        "escalate_if": {"router": router},
        "escalate_to": "large",
    }
    return Pipeline(parse_pipeline({"name": "t", "steps": [step]}))


def narrow(registry: Registry) -> Registry:
    """The small model declares a 64-token context: a long input does not fit it."""
    config = registry.config.model_copy(deep=True)
    config.models[0].context = 64
    return Registry(config)


async def test_a_router_whose_choice_cannot_fit_the_input_escalates_as_in_the_gateway(
    two_tiers,
) -> None:
    registry, small, large = two_tiers
    registry = narrow(registry)
    gateway_choice = resolve("auto", registry).route(ChatRequest([Message("user", LONG)]))
    assert gateway_choice.model.name == "large"  # small's context is too small for it
    step = (await escalating("auto").run(LONG, registry=registry)).steps["s"]
    assert step.model == "large" and step.escalated
    assert "context (64)" in (step.reason or "")
    assert large.received and not small.received
    short = (await escalating("auto").run("tiny", registry=registry)).steps["s"]
    assert short.model == "small" and not short.escalated


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("small", "'small' is a model, not a router"),
        ("nope", "'nope' does not exist"),
    ],
)
async def test_a_name_that_is_not_a_router_says_what_it_is(two_tiers, name, needle) -> None:
    registry, _small, _large = two_tiers
    with pytest.raises(SmallfirstError, match=needle):
        await escalating(name).run("text", registry=registry)
