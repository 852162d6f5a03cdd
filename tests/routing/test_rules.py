"""Rules router: PII stays local, rules in order, default model or another router."""

from __future__ import annotations

import re

import pytest

from smallfirst.config import parse_config
from smallfirst.errors import ConfigError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import resolve_router
from smallfirst.routing.rules import detect_task, find_pii
from smallfirst.types import Message

MODELS = """
models:
  - {name: local, backend: llamacpp}
  - {name: mid, backend: openai, base_url: http://127.0.0.1:9/v1, tier: medium}
  - {name: big, backend: openai, base_url: http://127.0.0.1:9/v1, tier: large}
"""
RULES = """
routers:
  auto:
    kind: rules
    rules:
      - {max_chars: 20, model: local}
      - {task: [code, math], model: big}
      - {keywords: [contract], model: mid}
      - {regex: "(?i)step by step", model: big}
    default: mid
"""


def _router(routers: str = RULES):
    return resolve_router("auto", Registry(parse_config(MODELS + routers)))


def _ask(router, text: str, *earlier: str):
    messages = [Message("user", t) for t in earlier] + [Message("user", text)]
    return router.decide(messages)


@pytest.mark.parametrize(
    "text",
    [
        "Please email the results to jane.doe@example.com tomorrow, thanks a lot.",
        "My card is 4111 1111 1111 1111, why was the payment declined?",
        "Call me on +44 20 7946 0958 about the quarterly contract review.",
        "My SSN is 123-45-6789; fill in the tax form for the contract.",
        "Transfer to IBAN DE89 3704 0044 0532 0130 00 and write code for it.",
    ],
)
def test_pii_stays_local_before_any_rule(text: str) -> None:
    decision = _ask(_router(), text)
    assert decision.model == "local" and decision.reason.startswith("rule: pii (")


def test_pii_in_an_earlier_turn_still_counts() -> None:
    decision = _ask(
        _router(), "Now summarise our whole chat please, in detail.", "I am bob@example.org"
    )
    assert decision.model == "local"


def test_card_like_numbers_must_pass_luhn() -> None:
    assert find_pii("order 4111 1111 1111 1112 shipped") is None
    assert find_pii("nothing personal here") is None


def test_rules_apply_in_order_with_readable_reasons() -> None:
    router = _router()
    assert _ask(router, "hi there").reason == "rule 1: length 8 <= 20 -> local"
    code = _ask(router, "Write a python function that merges two sorted lists.")
    assert code.model == "big" and code.reason == "rule 2: task code -> big"
    legal = _ask(router, "Read this rental Contract and list the tenant's duties.")
    assert legal.model == "mid" and "keyword 'contract'" in legal.reason
    steps = _ask(router, "Explain photosynthesis Step By Step for a child.")
    assert steps.model == "big" and "regex" in steps.reason
    other = _ask(router, "Tell me a story about a brave little lighthouse.")
    assert other.model == "mid" and other.reason.startswith("no rule matched (task chat)")


def test_default_can_be_another_router() -> None:
    routers = (
        RULES.replace("default: mid", "default: other") + "  other: {kind: rules, default: big}\n"
    )
    decision = _ask(_router(routers), "Tell me a story about a brave little lighthouse.")
    assert decision.model == "big" and decision.router == "auto"
    assert decision.reason.startswith("no rule matched (task chat); no rule matched")


def test_pii_to_local_can_be_switched_off() -> None:
    routers = "routers:\n  auto: {kind: rules, pii_to_local: false, default: big}\n"
    assert _ask(_router(routers), "mail me at a@b.co please, long text here").model == "big"


def test_task_detection() -> None:
    assert detect_task("Summarize this meeting") == "summarize"
    assert detect_task("What is 12 * 7?") == "math"
    assert detect_task("Translate this into French") == "translate"
    assert detect_task("Good morning!") == "chat"


@pytest.mark.parametrize(
    ("routers", "message"),
    [
        (
            "routers:\n  auto: {kind: rules, default: nosuch}\n",
            ":7: routers.auto.default: 'nosuch'",
        ),
        ("routers:\n  auto: {kind: rules, rules: [{max_chars: 3}]}\n", "rules.0.model: Field req"),
        (
            "routers:\n  auto: {kind: rules, rules: [{model: big, colour: red}]}\n",
            "rules.0.colour: unknown key",
        ),
        ("routers:\n  auto: {kind: rules, rules: [{model: huge}]}\n", "rules.0.model: 'huge'"),
        ("routers:\n  auto: {kind: rules, rules: [{model: big, task: poems}]}\n", "rules.0.task"),
        ("routers:\n  auto: {kind: rules, rules: [{model: big, regex: '('}]}\n", "not a valid"),
    ],
)
def test_bad_rules_config_fails_when_the_config_loads(routers: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(MODELS + routers)


def test_router_rules_name_finds_a_rules_entry_by_kind() -> None:
    routers = (
        "routers:\n  guard: {kind: rules, rules: [{max_chars: 5, model: big}], default: mid}\n"
    )
    router = resolve_router("router-rules", Registry(parse_config(MODELS + routers)))
    assert _ask(router, "hey").model == "big"
    assert _ask(router, "a longer question here").model == "mid"
