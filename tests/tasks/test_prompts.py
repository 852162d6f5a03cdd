import json

import pytest

from smallfirst.errors import ConfigError
from smallfirst.tasks.examples import Example
from smallfirst.tasks.prompts import build_prompt
from smallfirst.tasks.retrieval import Chunk
from smallfirst.tasks.spec import parse_spec

SENTIMENT = parse_spec(
    {
        "kind": "classify",
        "input_name": "Tweet",
        "labels": {"negative": "unhappy", "positive": "happy"},
        "instructions": "Sarcasm counts as negative.",
    }
)
SHOTS = [Example("I hate Mondays", "negative"), Example("Sunny day!", "positive")]


def test_completion_prompt_lists_labels_examples_and_ends_with_the_cue():
    plan = build_prompt(SENTIMENT, "great game", SHOTS, "completion")
    text = plan.prompt
    assert plan.style == "completion" and not plan.messages
    assert "- negative: unhappy\n- positive: happy" in text
    assert "Sarcasm counts as negative." in text
    assert "Respond with only the label" in text
    assert "Tweet: I hate Mondays\nLabel: negative" in text
    assert "Tweet: Sunny day!\nLabel: positive" in text
    assert text.endswith("Tweet: great game\nLabel:")
    assert text.index("I hate Mondays") < text.index("great game")


def test_chat_prompt_puts_examples_in_turns():
    plan = build_prompt(SENTIMENT, "great game", SHOTS, "chat")
    roles = [m.role for m in plan.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "- positive: happy" in plan.messages[0].content
    assert plan.messages[2].content == "negative"
    assert plan.messages[-1].content == "Tweet: great game"


def test_json_label_format_for_response_format_backends():
    plan = build_prompt(SENTIMENT, "x", SHOTS, "chat", label_format="json")
    assert '{"label": "<label>"}' in plan.messages[0].content
    assert json.loads(plan.messages[2].content) == {"label": "negative"}


def test_extract_prompt_describes_fields_and_shows_json_examples():
    spec = parse_spec(
        {
            "kind": "extract",
            "schema": {
                "type": "object",
                "properties": {
                    "email": {"type": "string", "description": "e-mail address"},
                    "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                },
            },
        }
    )
    shots = [Example("mail a@b.c", {"email": "a@b.c"})]
    text = build_prompt(spec, "I am 30", shots, "completion").prompt
    assert "- email (string): e-mail address" in text and "- age (integer)" in text
    assert 'Text: mail a@b.c\nJSON: {"email": "a@b.c"}' in text
    assert text.endswith("Text: I am 30\nJSON:")


def test_summarize_and_answer_prompts():
    summary = parse_spec({"kind": "summarize", "max_words": 25, "style": "bullets"})
    plan = build_prompt(summary, "long text", [], "completion")
    assert "at most 25 words" in plan.prompt and "bullet points" in plan.prompt
    assert plan.stop == ["\n\n", "\nText:"]  # bullets span lines, up to the next input
    one_line = parse_spec({"kind": "summarize", "style": "one_sentence"})
    assert build_prompt(one_line, "long text", [], "completion").stop == ["\n"]
    answer = parse_spec({"kind": "answer", "unknown_answer": "No idea."})
    chunks = [Chunk("Opens at 9.", "hours.md"), Chunk("Free parking.", "parking.md")]
    text = build_prompt(answer, "When?", [], "completion", chunks=chunks).prompt
    assert "[1] Opens at 9.\n[2] Free parking.\nQuestion: When?\nAnswer:" in text
    assert "respond with exactly: No idea." in text


def test_input_first_puts_the_text_before_the_instruction():
    spec = parse_spec({"kind": "summarize", "max_words": 20, "layout": "input_first"})
    other = parse_spec({"kind": "summarize", "max_words": 5, "layout": "input_first"})
    plan = build_prompt(spec, "the meeting notes", [], "completion")
    assert plan.prompt.startswith("Text: the meeting notes\n\n")
    assert plan.prompt.endswith("Summary:") and plan.stop == ["\n"]
    shared = build_prompt(other, "the meeting notes", [], "completion").prompt
    assert shared.startswith("Text: the meeting notes\n\n") and shared != plan.prompt
    chat = build_prompt(spec, "the meeting notes", [], "chat")
    assert [m.role for m in chat.messages] == ["user"]
    assert chat.messages[0].content.startswith("Text: the meeting notes\n\n")


def test_input_first_takes_no_examples():
    with pytest.raises(ConfigError, match="input_first takes no examples"):
        parse_spec(
            {
                "kind": "summarize",
                "layout": "input_first",
                "examples": [{"input": "a long text", "output": "short"}],
            }
        )
