import json

import pytest

from smallfirst.distill.prompts import (
    MalformedAnswer,
    match_label,
    parse_answer,
    says_none,
    system_prompt,
    task_summary,
    teacher_messages,
)
from smallfirst.tasks.spec import parse_spec

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
    "required": ["city"],
}


def test_labels_are_matched_leniently_but_never_guessed():
    labels = ["card_arrival", "refund", "Top Up"]
    assert match_label("refund", labels) == "refund"
    assert match_label("Card Arrival.", labels) == "card_arrival"
    assert match_label("Label: top-up", labels) == "Top Up"
    with pytest.raises(MalformedAnswer, match="not one of the 3 labels"):
        match_label("refund or card_arrival", labels)
    with pytest.raises(MalformedAnswer):
        match_label("transfer", labels)


def test_extract_answers_are_validated_and_normalised():
    summary = task_summary(parse_spec({"kind": "extract", "schema": SCHEMA}))
    output, label = parse_answer(summary, '```json\n{"nights": 2, "city": "Oslo"}\n```')
    assert json.loads(output) == {"city": "Oslo", "nights": 2} and label is None
    assert output == '{"city": "Oslo", "nights": 2}'
    with pytest.raises(MalformedAnswer, match="not JSON"):
        parse_answer(summary, "Oslo, 2 nights")
    with pytest.raises(MalformedAnswer, match="does not match the schema"):
        parse_answer(summary, '{"nights": "two"}')
    assert '"city"' in system_prompt(summary)


def test_free_text_and_prompt_shape():
    summary = task_summary(
        parse_spec({"kind": "summarize", "input_name": "Meeting", "instructions": "Be terse."})
    )
    assert parse_answer(summary, "  A short summary. ") == ("A short summary.", None)
    with pytest.raises(MalformedAnswer, match="empty"):
        parse_answer(summary, "   ")
    system, user = teacher_messages(summary, "We met.")
    assert system.role == "system" and "Be terse." in system.content
    assert user.content == "Meeting: We met."


def test_an_out_of_scope_teacher_may_answer_none_unless_none_is_a_label():
    summary = {"name": "s", "kind": "classify", "input_name": "Text", "labels": ["yes", "no"]}
    plain = teacher_messages(summary, "hi")[0].content
    allowed = teacher_messages(summary, "hi", out_of_scope=True)[0].content
    assert (
        "none" not in plain
        and allowed == plain + " If the text fits none of the labels, answer none."
    )
    assert says_none(summary, "None.") and says_none(summary, " none ")
    assert not says_none(summary, "no") and not says_none(summary, "none of them fit, maybe no")
    assert not says_none({**summary, "labels": ["None", "some"]}, "none")  # a real label
    summarize = {"name": "s", "kind": "summarize", "input_name": "Text"}
    assert teacher_messages(summarize, "x", out_of_scope=True) == teacher_messages(summarize, "x")
    assert not says_none(summarize, "none")
