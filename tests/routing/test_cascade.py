"""The escalation ladder against real scripted upstreams: keep, escalate, fail over, route."""

from __future__ import annotations

import pytest

from smallfirst.config import CascadeConfig, parse_config
from smallfirst.errors import ConfigError, ModelNotFoundError, UpstreamError
from smallfirst.routing.base import RouteDecision
from smallfirst.routing.cascade import Cascade, Cascades
from smallfirst.target import RouterTarget, Targets
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, GenerationParams, Message
from tests.routing.upstreams import registry_for, scripted_models

TIERS = {"small": "small", "medium": "medium", "large": "large"}
LABELS = {"kind": "constraint", "labels": ["positive", "negative", "neutral"]}


def chat(text: str = "I love it") -> ChatRequest:
    return ChatRequest([Message("user", text)], GenerationParams(max_tokens=4, temperature=0))


@pytest.fixture
def ladder():
    with scripted_models("small", "medium", "large") as (upstreams, urls):
        upstreams["small"].default = Script(text="positive")
        upstreams["medium"].default = Script(text="negative")
        upstreams["large"].default = Script(text="neutral", prompt_tokens=100)
        yield upstreams, urls


def cascade_of(urls, checks, rungs=("small", "large"), failover=None, **extra) -> Cascade:
    spec = {"rungs": list(rungs), "checks": checks, **extra}
    registry = registry_for(urls, TIERS, cascades={"sentiment": spec}, failover=failover)
    return Targets(registry).cascades.get("cascade-sentiment")


def story(result) -> list[tuple[str, str | None, str]]:
    return [(h.kind, h.model, h.outcome) for h in result.hops]


async def test_an_answer_that_passes_its_checks_stays_on_the_small_rung(ladder):
    upstreams, urls = ladder
    result = await cascade_of(urls, [LABELS]).run(chat())
    assert result.generation.text == "positive" and result.verified
    assert story(result) == [
        ("answer", "small", "ok"),
        ("check", "small", "passed"),
        ("accept", "small", "kept"),
    ]
    assert not upstreams["large"].received
    assert result.escalations == 0 and result.escalation_cost_usd == 0


async def test_a_failed_check_escalates_and_the_hops_tell_why(ladder):
    upstreams, urls = ladder
    upstreams["small"].enqueue(Script(text="I think it is good"))
    result = await cascade_of(urls, [LABELS]).run(chat(), request_id="req-esc")
    assert result.generation.text == "neutral" and result.model == "large"
    assert story(result) == [
        ("answer", "small", "ok"),
        ("check", "small", "failed"),
        ("escalate", "large", "escalated"),
        ("answer", "large", "ok"),
        ("accept", "large", "kept"),
    ]
    assert "not one of the labels" in result.hops[1].detail
    assert {h.request_id for h in result.hops} == {"req-esc"}
    large_cost = (100 * 10.0 + 1 * 30.0) / 1e6
    assert result.escalation_cost_usd == pytest.approx(large_cost)
    assert result.cost_usd > result.escalation_cost_usd


async def test_three_rungs_climb_one_at_a_time(ladder):
    upstreams, urls = ladder
    upstreams["small"].default = Script(text="")
    upstreams["medium"].default = Script(text="Sorry, I can't help with that")
    result = await cascade_of(urls, [LABELS], rungs=("small", "medium", "large")).run(chat())
    assert result.model == "large" and result.escalations == 2
    details = [h.detail for h in result.hops if h.kind == "check"]
    assert details == ["empty answer", "the answer is a refusal"]


async def test_tier_names_pick_the_cheapest_model_of_the_tier(ladder):
    _, urls = ladder
    cascade = cascade_of(urls, [LABELS], rungs=("small", "large"))
    assert cascade.rungs == ["small", "large"]
    by_tier = cascade_of(urls, [LABELS], rungs=("medium", "large"))
    assert by_tier.rungs == ["medium", "large"]


async def test_a_failing_rung_escalates_as_a_failure(ladder):
    upstreams, urls = ladder
    upstreams["small"].default = Script("error", status=503)
    result = await cascade_of(urls, [LABELS], failover={"retries": 1}).run(chat())
    assert result.model == "large" and result.verified
    assert [h.kind for h in result.hops] == ["failure", "failure", "escalate", "answer", "accept"]
    assert "no answer" in result.hops[2].detail


async def test_the_best_unverified_answer_beats_an_error(ladder):
    upstreams, urls = ladder
    upstreams["small"].default = Script(text="maybe")
    upstreams["large"].default = Script("error", status=500)
    result = await cascade_of(urls, [LABELS], failover={"retries": 0}).run(chat())
    assert result.generation.text == "maybe" and not result.verified
    assert result.hops[-1].outcome == "unverified"
    assert "returned unverified" in result.hops[-1].detail


async def test_no_answer_anywhere_is_one_clear_error(ladder):
    upstreams, urls = ladder
    for upstream in upstreams.values():
        upstream.default = Script("error", status=500)
    with pytest.raises(UpstreamError) as info:
        await cascade_of(urls, [LABELS], failover={"retries": 0}).run(chat())
    assert info.value.status == 502
    assert "small: " in info.value.message and "large: " in info.value.message  # every rung


async def test_the_last_rung_is_checked_only_when_asked(ladder):
    upstreams, urls = ladder
    upstreams["small"].default = Script(text="meh")
    upstreams["large"].default = Script(text="also meh")
    plain = await cascade_of(urls, [LABELS]).run(chat())
    assert plain.verified and [h.kind for h in plain.hops].count("check") == 1
    strict = await cascade_of(urls, [LABELS], check_last_rung=True).run(chat())
    assert not strict.verified and [h.kind for h in strict.hops].count("check") == 2


async def test_agreement_draws_samples_and_charges_them_to_the_check(ladder):
    upstreams, urls = ladder
    agreement = {"kind": "agreement", "samples": 3, "threshold": 0.6}
    kept = await cascade_of(urls, [agreement]).run(chat())
    assert kept.model == "small" and kept.hops[1].score == 1.0
    assert kept.hops[1].output_tokens == 2 and kept.hops[1].cost_usd > 0
    seeds = [body.get("seed") for body in upstreams["small"].received[1:]]
    assert sorted(seeds) == [1, 2]
    upstreams["small"].enqueue(Script(text="positive"), Script(text="negative"), Script(text="x"))
    escalated = await cascade_of(urls, [agreement]).run(chat())
    assert escalated.model == "large"
    assert escalated.hops[1].score == pytest.approx(1 / 3)


async def test_a_judge_decides_and_its_tokens_are_counted(ladder):
    upstreams, urls = ladder
    judge = {"kind": "judge", "model": "medium"}
    upstreams["medium"].default = Script(text="yes")
    kept = await cascade_of(urls, [judge]).run(chat())
    assert kept.model == "small" and kept.hops[1].score == 1.0
    assert kept.hops[1].cost_usd > 0
    assert "Proposed answer:\npositive" in upstreams["medium"].received[0]["messages"][0]["content"]
    upstreams["medium"].default = Script(text="No")
    escalated = await cascade_of(urls, [judge]).run(chat())
    assert escalated.model == "large"


async def test_a_judge_that_fails_counts_as_a_failed_check(ladder):
    upstreams, urls = ladder
    upstreams["medium"].default = Script("error", status=500)
    cascade = cascade_of(urls, [{"kind": "judge", "model": "medium"}], failover={"retries": 0})
    outcome = await cascade.run(chat())
    assert outcome.model == "large"
    assert "did not answer" in next(h for h in outcome.hops if h.kind == "check").detail
    assert any(h.kind == "failure" and h.model == "medium" for h in outcome.hops)


async def test_logprob_check_without_logprobs_escalates(ladder):
    upstreams, urls = ladder
    result = await cascade_of(urls, [{"kind": "logprob", "threshold": 0.5}]).run(chat())
    assert result.model == "large"
    assert result.hops[1].detail == "the model returned no token logprobs"
    assert upstreams["small"].received[0]["logprobs"] is True


class FixedRouter:
    name = "fixed"

    def __init__(self, model: str) -> None:
        self.model = model

    def decide(self, messages: list[Message]) -> RouteDecision:
        return RouteDecision(self.model, self.name, "looks hard", score=0.9)


def routed(registry, router: FixedRouter) -> Cascade:
    """Cascade `s` starting where `router` says, as a configured router would."""
    target = RouterTarget(router.name, router, registry)
    return Cascade("s", registry.config.cascades["s"], registry, router=target)


async def test_a_router_skips_rungs_it_predicts_will_fail(ladder):
    upstreams, urls = ladder
    registry = registry_for(urls, TIERS, cascades={"s": {"rungs": ["small", "medium", "large"]}})
    cascade = routed(registry, FixedRouter("medium"))
    result = await cascade.run(chat())
    assert result.model == "medium"
    assert result.hops[0].kind == "route" and result.hops[0].outcome == "skip"
    assert "skipped rungs: small" in result.hops[0].detail
    assert not upstreams["small"].received


async def test_a_router_naming_a_model_off_the_ladder_maps_by_tier(ladder):
    _, urls = ladder
    registry = registry_for(urls, TIERS, cascades={"s": {"rungs": ["small", "large"]}})
    cascade = routed(registry, FixedRouter("medium"))
    result = await cascade.run(chat())
    assert result.model == "large" and result.hops[0].rung == 1


async def test_a_broken_router_starts_at_the_first_rung(ladder):
    _, urls = ladder

    class Broken(FixedRouter):
        def decide(self, messages):
            raise RuntimeError("no model file")

    registry = registry_for(urls, TIERS, cascades={"s": {"rungs": ["small", "large"]}})
    cascade = routed(registry, Broken("x"))
    result = await cascade.run(chat())
    assert result.model == "small" and "router failed" in result.hops[0].detail


async def test_configured_router_auto_uses_the_default_model(ladder):
    _, urls = ladder
    result = await cascade_of(urls, [LABELS], router="auto").run(chat())
    assert result.hops[0].kind == "route" and result.hops[0].outcome == "start"
    assert result.model == "small"


async def test_a_configured_rules_router_picks_the_starting_rung(ladder):
    upstreams, urls = ladder
    rules = {"kind": "rules", "rules": [{"keywords": ["contract"], "model": "large"}]}
    spec = {"rungs": ["small", "large"], "checks": [LABELS], "router": "auto"}
    registry = registry_for(urls, TIERS, cascades={"s": spec}, routers={"auto": rules})
    cascade = Targets(registry).cascades.get("s")
    hard = await cascade.run(chat("Review this contract clause"))
    assert hard.model == "large" and hard.hops[0].outcome == "skip"
    assert not upstreams["small"].received
    easy = await cascade.run(chat("I love it"))
    assert easy.model == "small" and easy.hops[0].outcome == "start"


async def test_a_router_named_under_routers_picks_the_starting_rung(ladder):
    """A cascade's `router:` resolves through Targets like a request's `model`: `guard` is
    that `routers:` entry, the router `default: guard` would name."""
    upstreams, urls = ladder
    guard = {"kind": "rules", "rules": [{"keywords": ["contract"], "model": "large"}]}
    spec = {"rungs": ["small", "large"], "router": "guard"}
    registry = registry_for(urls, TIERS, cascades={"s": spec}, routers={"guard": guard})
    target = Targets(registry).resolve("cascade-s")
    answer = await target.generate(chat("Review this contract clause"))
    assert answer.model == "large" and not upstreams["small"].received
    route = answer.hops[0]
    assert (route.kind, route.outcome) == ("route", "skip")
    assert route.detail.startswith("guard: rule") and "skipped rungs: small" in route.detail


async def test_a_cascade_router_of_another_kind_says_what_it_is(ladder):
    _, urls = ladder
    registry = registry_for(urls, TIERS, cascades={"x": {"rungs": ["small"]}})
    targets = Targets(registry)
    for name, kind in [("large", "model"), ("default", "model"), ("cascade-x", "cascade")]:
        config = CascadeConfig(rungs=["small", "large"], router=name)
        with pytest.raises(ConfigError) as info:
            Cascade("s", config, registry, resolve=targets.router)
        assert info.value.message == f"cascade 's': router: {name!r} is a {kind}, not a router"
    typo = CascadeConfig(rungs=["small"], router="atuo")
    with pytest.raises(ModelNotFoundError) as missing:  # the 404 of every path, naming what works
        Cascade("s", typo, registry, resolve=targets.router)
    assert "'atuo' does not exist" in missing.value.message
    assert "routers: auto" in missing.value.message
    with pytest.raises(ConfigError, match=r"build it through smallfirst\.target\.Targets"):
        Cascade("s", CascadeConfig(rungs=["small"], router="auto"), registry)


async def test_unknown_cascade_names_are_404(ladder):
    _, urls = ladder
    cascades = Cascades(registry_for(urls, TIERS, cascades={"x": {"rungs": ["small"]}}))
    assert cascades.cascade_name("cascade-x") == "x" and cascades.cascade_name("x") == "x"
    assert cascades.cascade_name("small") is None
    with pytest.raises(ModelNotFoundError) as info:
        cascades.get("cascade-nope")
    assert info.value.status == 404 and "cascade-x" in info.value.message


async def test_streaming_a_cascade_sends_only_the_accepted_answer(ladder):
    upstreams, urls = ladder
    upstreams["small"].enqueue(Script(text="hmm"))
    result, deltas = await cascade_of(urls, [LABELS]).stream(chat())
    pieces = [d async for d in deltas]
    assert "".join(p.text for p in pieces) == "neutral"
    assert pieces[-1].usage is not None and result.model == "large"


def test_config_rejects_unknown_rungs_and_incomplete_checks():
    models = "models:\n  - {name: a, backend: openai, base_url: 'http://x/v1'}\n"
    with pytest.raises(ConfigError, match="neither a model"):
        parse_config(models + "cascades:\n  c:\n    rungs: [nope]\n")
    with pytest.raises(ConfigError, match=r":7: cascades.c.checks.0: a judge check needs `model`"):
        parse_config(models + "cascades:\n  c:\n    rungs: [a]\n    checks:\n      - kind: judge\n")
    config = parse_config(models + "cascades:\n  c:\n    rungs: [small, a]\n")
    assert config.cascades["c"].rungs == ["small", "a"] and config.failover.retries == 2
