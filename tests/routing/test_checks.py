"""Checks on answers: constraints, confidence, judges, and a logprob check on the real model."""

from __future__ import annotations

import math

import pytest

from smallfirst.config import CheckConfig, Config, ModelConfig
from smallfirst.models.registry import Registry
from smallfirst.routing.cascade import Cascade
from smallfirst.routing.checks import (
    ConstraintCheck,
    build_check,
    judge_yes_probability,
    normalize_answer,
    prompt_text,
)
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Generation,
    GenerationParams,
    Message,
    TokenLogprob,
)

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_normalize_answer_ignores_case_space_punctuation_and_json_layout():
    assert normalize_answer("  Positive. ") == normalize_answer("positive")
    assert normalize_answer('{"b": 1, "a": 2}') == normalize_answer('{"a":2,"b":1}')


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty answer"),
        ("I'm sorry, I cannot do that", "the answer is a refusal"),
        ("As an AI, I have no opinion", "the answer is a refusal"),
        ("great", "'great' is not one of the labels"),
    ],
)
def test_constraint_problems_are_named(text, problem):
    check = ConstraintCheck(["Positive", "negative"], None, allow_refusal=False)
    assert check.problem(text, None) == problem
    assert check.problem(" positive ", None) is None


def test_constraint_checks_json_against_the_schema_of_the_check_or_request():
    check = ConstraintCheck(None, SCHEMA, allow_refusal=False)
    assert check.problem('{"n": 3}', None) is None
    assert check.problem("{n: 3}", None) == "the answer is not valid JSON"
    assert "does not match the schema" in check.problem('{"n": "x"}', None)
    from_request = ConstraintCheck(None, None, allow_refusal=True)
    assert "does not match" in from_request.problem('{"m": 1}', SCHEMA)
    assert from_request.problem("Sorry, no", None) is None


def test_judge_probability_prefers_logprobs_over_text():
    top = {"yes": math.log(0.6), "no": math.log(0.2), "maybe": math.log(0.2)}
    verdict = Generation("no", "j", logprobs=[TokenLogprob("no", math.log(0.2), top)])
    assert judge_yes_probability(verdict) == pytest.approx(0.75)
    assert judge_yes_probability(Generation(" Yes.", "j")) == 1.0
    assert judge_yes_probability(Generation("nope", "j")) == 0.0


def test_prompt_text_is_the_last_user_turn():
    chat = ChatRequest([Message("system", "s"), Message("user", "a"), Message("user", "b")])
    assert prompt_text(chat) == "b"
    assert prompt_text(CompletionRequest("p")) == "p"


def test_default_thresholds_come_with_each_kind():
    registry = Registry(Config())
    assert build_check(CheckConfig(kind="logprob"), registry).threshold == 0.7
    assert build_check(CheckConfig(kind="agreement"), registry).threshold == 0.6
    assert build_check(CheckConfig(kind="constraint", threshold=0.2), registry).threshold == 1.0
    judge = build_check(CheckConfig(kind="judge", model="small"), registry)
    assert judge.model == "gemma-3-270m"


@pytest.mark.slow
async def test_logprob_confidence_on_the_embedded_model(embedded_model_path, tmp_path):
    """The real Gemma returns token logprobs; the check turns them into a confidence."""
    replay_csv = tmp_path / "large.csv"
    replay_csv.write_text("prompt,answer\nThe capital of France is,Paris\n")
    models = [
        ModelConfig(name="gemma", backend="llamacpp", tier="small", context=512, threads=1),
        ModelConfig(
            name="big", backend="replay", tier="large", options={"outcomes": str(replay_csv)}
        ),
    ]
    config = Config.model_validate(
        {
            "models": [m.model_dump() for m in models],
            "cascades": {"c": {"rungs": ["gemma", "big"], "checks": [{"kind": "logprob"}]}},
        }
    )
    registry = Registry(config)
    request = CompletionRequest("The capital of France is", GenerationParams(max_tokens=3, seed=0))
    try:
        cascade = Cascade("c", config.cascades["c"], registry)
        cascade.checks[0].threshold = 0.0
        kept = await cascade.run(request)
        cascade.checks[0].threshold = 1.01
        escalated = await cascade.run(request)
    finally:
        await registry.aclose()
    check = kept.hops[1]
    assert kept.model == "gemma" and check.kind == "check" and 0.0 < check.score <= 1.0
    assert escalated.model == "big" and escalated.generation.text == "Paris"
    assert escalated.hops[1].score == pytest.approx(check.score)
