import pytest
from pydantic import BaseModel

from smallfirst.config import ModelConfig
from smallfirst.tasks.output import (
    OutputInvalid,
    constraint_for,
    label_choices,
    label_confidence,
    parse_json_object,
    parse_label,
    strict_schema,
    validate_fields,
)
from smallfirst.types import TokenLogprob

LABELS = ["negative", "neutral", "positive"]


@pytest.mark.parametrize(
    "text",
    [" positive", "Positive", '"positive".', '{"label": "positive"}', "```\npositive\n```"],
)
def test_parse_label_accepts_the_label_in_common_wrappings(text):
    assert parse_label(text, LABELS) == "positive"


def test_parse_label_rejects_anything_else_naming_the_labels():
    with pytest.raises(OutputInvalid, match="'great' is not one of the labels: negative"):
        parse_label("great", LABELS)


def test_constraint_follows_the_backend():
    assert constraint_for(ModelConfig(name="a", backend="llamacpp")) == "grammar"
    openai = ModelConfig(name="b", backend="openai", base_url="http://x/v1")
    assert constraint_for(openai) == "response_format"
    base = ModelConfig(
        name="c", backend="openai", base_url="http://x/v1", prompt_style="completion"
    )
    assert constraint_for(base) == "none"
    assert constraint_for(ModelConfig(name="d", backend="anthropic")) == "none"


def test_label_choices_allow_a_leading_space():
    assert label_choices(["yes", "no"]) == ["yes", "no", " yes", " no"]


def test_strict_schema_closes_objects_and_makes_optional_keys_nullable():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer", "default": 1}},
        "required": ["a"],
    }
    strict = strict_schema(schema)
    assert strict["required"] == ["a", "b"] and strict["additionalProperties"] is False
    assert strict["properties"]["a"] == {"type": "string"}
    assert strict["properties"]["b"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def test_parse_json_object_tolerates_fences_and_reports_bad_json():
    assert parse_json_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Sure! {"a": 1} hope it helps') == {"a": 1}
    with pytest.raises(OutputInvalid, match="not valid JSON"):
        parse_json_object('{"a": 1')
    with pytest.raises(OutputInvalid, match="not a JSON object"):
        parse_json_object("nothing here")


class Person(BaseModel):
    name: str
    age: int | None = None


def test_validate_fields_with_pydantic_and_with_a_schema():
    assert validate_fields({"name": "Ann"}, {}, Person) == Person(name="Ann")
    with pytest.raises(OutputInvalid, match="age: Input should be a valid integer"):
        validate_fields({"name": "Ann", "age": "old"}, {}, Person)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert validate_fields({"n": 2}, schema, None) == {"n": 2}
    with pytest.raises(OutputInvalid, match="'n' is a required property"):
        validate_fields({}, schema, None)


def test_label_confidence_is_the_joint_probability_of_the_written_tokens():
    tokens = [TokenLogprob(" pos", -0.1), TokenLogprob("itive", -0.2)]
    assert label_confidence(tokens) == pytest.approx(0.7408, abs=1e-4)
    assert label_confidence(None) is None


OVERFLOWING = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "story": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "story", "tags"],
}


async def test_embedded_answer_that_overflows_max_tokens_still_parses(embedded_registry):
    """The grammar's bounds, then closing at the budget: a cut answer is JSON and says so."""
    import json

    import jsonschema

    from smallfirst.types import ChatRequest, GenerationParams, Message

    provider = embedded_registry.provider("default")
    request = ChatRequest(
        [Message("user", "Write a long story about the sea, as JSON.")],
        GenerationParams(max_tokens=10, json_schema=OVERFLOWING),
    )
    cut = await provider.chat(request)
    assert cut.finish_reason == "length" and cut.usage.output_tokens == 10
    jsonschema.validate(json.loads(cut.text), OVERFLOWING)

    from smallfirst.tasks import Task

    task = Task(kind="extract", name="story", schema=OVERFLOWING, max_tokens=12)
    result = await task.run("A ship left port at dawn; the crew sang.", registry=embedded_registry)
    jsonschema.validate(result.data, OVERFLOWING)
    assert result.attempts == 1 and result.finish_reason in ("length", "stop")
    assert result.tries[0].usage.output_tokens <= 12
    await embedded_registry.aclose()
