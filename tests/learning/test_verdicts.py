"""Verdicts: closed outputs compared exactly or field by field, free text by a real judge
model on a scripted upstream."""

from __future__ import annotations

import orjson
import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.learning.verdicts import (
    answer_text,
    compare,
    judge,
    output_kind,
    parse_preference,
)
from smallfirst.models.registry import Registry
from smallfirst.testing import Script
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    GenerationParams,
    Message,
    Tool,
    ToolCall,
)

CLASSIFY = "Classify the banking query into one intent label."


def chat(system: str, user: str, **params) -> ChatRequest:
    return ChatRequest(
        [Message("system", system), Message("user", user)], GenerationParams(**params)
    )


# -- what kind of output ---------------------------------------------------------------------


def test_tools_then_json_then_label_then_text() -> None:
    tools = [Tool("get_weather", parameters={"type": "object"})]
    assert output_kind(chat(CLASSIFY, "x", tools=tools)) == "tool_calls"
    assert output_kind(chat(CLASSIFY, "x", json_object=True)) == "json"
    assert output_kind(chat("Extract", "x", json_schema={"type": "object"})) == "json"
    assert output_kind(chat(CLASSIFY, "my card is gone"), "card_lost") == "label"
    assert output_kind(CompletionRequest("Sentiment of: great film ->"), "positive") == "label"
    assert output_kind(chat("Summarise the meeting.", "notes..."), "They agreed.") == "text"


def test_a_closed_question_with_a_long_or_multiline_answer_is_text() -> None:
    request = chat(CLASSIFY, "my card is gone")
    assert output_kind(request) == "label"  # before any answer: the question decides
    assert output_kind(request, "x" * 65) == "text"
    assert output_kind(request, "card_lost\nbecause you said so") == "text"
    assert output_kind(request, "   ") == "text"


# -- labels ----------------------------------------------------------------------------------


def test_labels_equal_after_case_space_quotes_and_trailing_punctuation() -> None:
    verdict = compare("label", ' "Card_Lost." ', "card_lost")
    assert (verdict.agree, verdict.score) == (True, 1.0)
    verdict = compare("label", "card_found", "card_lost")
    assert (verdict.agree, verdict.score) == (False, 0.0)
    assert "card_found" in verdict.detail and "card_lost" in verdict.detail


# -- JSON --------------------------------------------------------------------------------------


def test_json_field_by_field_with_f1() -> None:
    large = '{"city": "Paris", "when": {"day": "monday", "hour": 9}, "people": 2}'
    assert compare("json", '{"people": 2.0, "when": {"hour": 9, "day": "Monday"}, '
                   '"city": " paris"}', large).agree is True  # fmt: skip
    verdict = compare("json", '{"city": "Paris", "when": {"day": "tuesday", "hour": 9}}', large)
    assert verdict.agree is False
    # 2 of 3 small fields right (precision 2/3), 2 of 4 reference fields found (recall 1/2)
    assert verdict.score == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert "when.day" in verdict.detail and "people" in verdict.detail


def test_json_booleans_are_not_numbers_and_lists_compare_in_order() -> None:
    assert compare("json", '{"ok": 1}', '{"ok": true}').agree is False
    assert compare("json", '{"tags": ["a", "b"]}', '{"tags": ["b", "a"]}').agree is False
    assert compare("json", '{"tags": ["A", "b"]}', '{"tags": ["a", "b"]}').agree is True


def test_invalid_json_from_small_disagrees_and_a_broken_reference_gives_no_verdict() -> None:
    verdict = compare("json", '```json\n{"a": 1}\n```', '{"a": 1}')
    assert (verdict.agree, verdict.score) == (False, 0.0)
    assert "not valid JSON" in verdict.detail
    assert compare("json", '{"a": 1}', "{not json").agree is None
    assert compare("json", "{}", "{}").agree is True


# -- tool calls ------------------------------------------------------------------------------


def calls(*pairs: tuple[str, str]) -> str:
    return answer_text(None, [ToolCall(f"id{i}", n, a) for i, (n, a) in enumerate(pairs)])


def test_tool_calls_by_name_and_parsed_arguments() -> None:
    large = calls(("get_weather", '{"city": "Paris", "days": 2}'))
    assert orjson.loads(large) == [
        {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'}
    ]
    same = calls(("get_weather", '{"days": 2.0,  "city": "paris"}'))
    assert compare("tool_calls", same, large).agree is True
    other = compare("tool_calls", calls(("get_weather", '{"city": "Rome", "days": 2}')), large)
    assert (other.agree, other.score) == (False, 0.0)
    extra = calls(("get_weather", '{"city": "Paris", "days": 2}'), ("get_time", "{}"))
    verdict = compare("tool_calls", extra, large)
    assert verdict.agree is False and verdict.score == pytest.approx(2 / 3)


def test_text_instead_of_a_call_disagrees() -> None:
    large = calls(("get_weather", '{"city": "Paris"}'))
    assert compare("tool_calls", "It is sunny in Paris.", large).agree is False
    assert compare("tool_calls", large, "I cannot look that up.").agree is False
    assert compare("tool_calls", "hello", "hi").agree is None


def test_free_text_has_no_verdict_without_a_judge() -> None:
    verdict = compare("text", "They agreed to ship.", "The team agreed to ship on Monday.")
    assert verdict.agree is None and verdict.score is None


# -- the judge -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("A", "A"), (" b.", "B"), ("**T**", "T"), ("Tie", "T"), ("Answer B is better", "B"),
     ("Both are equally good", "T"), ("The first one", None), ("", None)],
)  # fmt: skip
def test_parse_preference(reply: str, expected: str | None) -> None:
    assert parse_preference(reply) == expected


def judge_registry(base_url: str) -> Registry:
    judge_model = ModelConfig(
        name="judge",
        backend="openai",
        base_url=base_url,
        upstream_model="up-judge",
        tier="large",
        price=Price(input=5.0, output=15.0),
        timeout_s=2.0,
    )
    return Registry(Config(models=[judge_model]))


SUMMARY = chat("Summarise the meeting notes.", "Notes: ship on Monday, Ana owns QA.")


@pytest.mark.parametrize(
    ("replies", "agree", "score"),
    [(("A", "B"), True, 1.0), (("T", "T"), True, 0.5), (("A", "A"), False, 0.5),
     (("B", "A"), False, 0.0)],
)  # fmt: skip
async def test_judge_both_orders(scripted, replies, agree, score) -> None:
    upstream, base_url = scripted
    upstream.enqueue(*(Script(text=reply, prompt_tokens=100, completion_tokens=1)
                       for reply in replies))  # fmt: skip
    registry = judge_registry(base_url)
    entry = registry.get("judge")
    small, large = "Ship Monday; Ana on QA.", "They will ship on Monday and Ana owns QA."
    verdict = await judge(registry.raw_provider("judge"), entry.price, SUMMARY, small, large)
    await registry.aclose()
    assert (verdict.agree, verdict.score) == (agree, score)
    assert verdict.cost_usd == pytest.approx((2 * 100 * 5.0 + 2 * 1 * 15.0) / 1e6)
    asked = [body["messages"][1]["content"] for body in upstream.received]
    assert len(asked) == 2  # one order each: the cheaper answer as A, then as B
    assert {a.index(small) < a.index(large) for a in asked} == {True, False}
    assert all("Notes: ship on Monday" in a for a in asked)


async def test_a_failed_or_unreadable_judge_gives_no_verdict(scripted) -> None:
    upstream, base_url = scripted
    registry = judge_registry(base_url)
    entry = registry.get("judge")
    upstream.enqueue(Script(text="A", prompt_tokens=10), Script("error", status=500))
    verdict = await judge(registry.raw_provider("judge"), entry.price, SUMMARY, "a", "b")
    assert verdict.agree is None and "judge failed" in verdict.detail
    assert verdict.cost_usd > 0  # the order that answered is still paid for
    upstream.enqueue(Script(text="I like both"), Script(text="hmm"))
    verdict = await judge(registry.raw_provider("judge"), entry.price, SUMMARY, "a", "b")
    assert verdict.agree is None and "not understood" in verdict.detail
    await registry.aclose()
