"""The extraction student: BIO tags from (input, JSON) pairs, exact spans back, deferral."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from smallfirst.distill.extraction_student import (
    ExtractionStudent,
    bio_tags,
    flat_strings,
    tagged_pairs,
    tokenize,
    train_extraction_student,
    train_extraction_students,
)
from smallfirst.errors import InvalidRequestError, ModelLoadError

CITIES = ["paris", "berlin", "tokyo", "lima", "oslo", "rome", "cairo", "quito", "new york"]
TIMES = ["tomorrow", "tonight", "next week", "on friday", "this weekend"]
TEMPLATES = [
    ("what's the weather in {city} {time}", ("city", "time")),
    ("will it rain in {city} {time}", ("city", "time")),
    ("book a table in {city} for {time}", ("city", "time")),
    ("how cold is {city}", ("city",)),
    ("is it sunny in {city} right now", ("city",)),
    ("remind me to call mom {time}", ("time",)),
    ("thanks a lot", ()),
]


def slot_pairs(n: int, seed: int = 0) -> list[tuple[str, dict[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template, fields = rng.choice(TEMPLATES)
        values = {"city": rng.choice(CITIES), "time": rng.choice(TIMES)}
        text = template.format(**values)
        if rng.random() < 0.3:
            text = text.capitalize()
        out.append((text, {name: values[name] for name in fields}))
    return out


@pytest.fixture(scope="module")
def student() -> ExtractionStudent:
    pairs = slot_pairs(240)
    return train_extraction_student(
        [text for text, _ in pairs], [values for _, values in pairs], target_accuracy=0.9
    )


def test_tokens_carry_their_offsets():
    tokens = tokenize("What's up, New York?")
    assert [t.text for t in tokens] == ["What's", "up", ",", "New", "York", "?"]
    assert all("What's up, New York?"[t.start : t.end] == t.text for t in tokens)


def test_values_become_bio_tags_case_aside():
    text = "Book a table in New York tomorrow"
    tags = bio_tags(tokenize(text), text, {"city": "new york", "time": "tomorrow"})
    assert tags == ["O", "O", "O", "O", "B-city", "I-city", "B-time"]


def test_a_value_not_in_the_input_or_off_word_boundaries_has_no_tags():
    text = "book a table in parisian style"
    assert bio_tags(tokenize(text), text, {"city": "paris"}) is None  # inside a word
    assert bio_tags(tokenize(text), text, {"city": "lima"}) is None
    assert bio_tags(tokenize(text), text, {"city": ""}) is None


def test_the_same_value_twice_takes_the_next_free_occurrence():
    text = "from rome to rome"
    tags = bio_tags(tokenize(text), text, {"from": "rome", "to": "rome"})
    assert tags == ["O", "B-from", "O", "B-to"]


def test_pairs_whose_values_are_not_all_found_are_skipped_and_counted():
    texts = ["weather in oslo", "weather in lima", "weather in rome", "hello"]
    answers = [{"city": "oslo"}, {"city": "paris"}, None, {}]
    pairs = tagged_pairs(texts, answers)
    assert pairs.texts == ["weather in oslo", "hello"] and pairs.skipped == 2
    assert pairs.tags[1] == ["O"]


def test_only_flat_objects_of_strings_qualify():
    assert flat_strings('{"city": "oslo"}') == {"city": "oslo"}
    assert flat_strings("{}") == {}
    for answer in ('{"n": 2}', '{"a": {"b": "c"}}', "[1]", "not json", None):
        assert flat_strings(answer) is None


def test_held_out_inputs_are_extracted_exactly(student):
    held = slot_pairs(40, seed=7)
    predictions = student.predict([text for text, _ in held])
    answered = [(p, values) for p, (_, values) in zip(predictions, held, strict=True) if p.answered]
    assert len(answered) >= 30
    assert all(p.values == values for p, values in answered)
    assert student.heldout.skipped == 0 and student.heldout.coverage > 0.5


def test_the_answer_is_a_json_object_in_field_order_and_empty_without_spans(student):
    [both, none] = student.predict(["Will it rain in Quito next week", "thanks a lot"])
    assert both.answered and both.text == '{"city":"Quito","time":"next week"}'
    assert none.answered and none.values == {} and none.text == "{}"


def test_an_input_unlike_the_training_data_is_deferred(student):
    [odd] = student.predict(["zorblax quintessential hyperparameter flummox"])
    assert not odd.answered and odd.reason == "unfamiliar"
    assert odd.familiarity < student.familiarity_threshold


def test_a_low_confidence_input_is_deferred(student):
    [unsure] = student.predict(["in in in in in rain rain tomorrow tomorrow"])
    assert not unsure.answered and unsure.reason in ("unsure", "repeated")
    assert unsure.confidence < student.threshold or unsure.reason == "repeated"


def test_an_unreachable_target_defers_everything():
    pairs = slot_pairs(20)
    student = train_extraction_student(
        [text for text, _ in pairs], [values for _, values in pairs], target_accuracy=1.0
    )
    assert student.threshold == float("inf")
    assert not any(p.answered for p in student.predict([text for text, _ in pairs]))


def test_students_for_several_targets_share_one_fit_and_differ_in_threshold():
    pairs = slot_pairs(120)
    strict, loose = train_extraction_students(
        [text for text, _ in pairs], [values for _, values in pairs], targets=[0.99, 0.8]
    )
    assert strict.model is loose.model and strict.threshold >= loose.threshold
    assert (strict.target_accuracy, loose.target_accuracy) == (0.99, 0.8)
    assert loose.heldout.coverage >= strict.heldout.coverage


def test_too_few_usable_pairs_is_a_clear_error():
    with pytest.raises(InvalidRequestError, match="8\\+ answers whose values are all found"):
        train_extraction_student(["weather in oslo"] * 3, [{"city": "paris"}] * 3)


def test_save_and_load_give_the_same_answers(student, tmp_path: Path):
    path = tmp_path / "extract.joblib"
    student.save(path)
    loaded = ExtractionStudent.load(path)
    texts = [text for text, _ in slot_pairs(10, seed=3)]
    assert loaded.predict(texts) == student.predict(texts)
    assert loaded.heldout == student.heldout


def test_a_missing_or_foreign_file_is_a_load_error(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ExtractionStudent.load(tmp_path / "none.joblib")
    import joblib

    joblib.dump({"format": "other"}, tmp_path / "other.joblib")
    with pytest.raises(ModelLoadError, match="not a smallfirst extraction student"):
        ExtractionStudent.load(tmp_path / "other.joblib")
