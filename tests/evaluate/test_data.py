"""Loading the labelled set: aliases, limits, and errors that name the line."""

from __future__ import annotations

import json

import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.data import Example, load_examples


def test_loads_input_expected_and_aliases(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(
        '{"input": "a", "expected": "x"}\n\n{"text": "b", "label": "y"}\n'
        '{"input": {"question": "q"}, "expected": ["one", "two"]}\n'
    )
    assert load_examples(path) == [
        Example("a", "x"),
        Example("b", "y"),
        Example({"question": "q"}, ["one", "two"]),
    ]
    assert len(load_examples(path, limit=2)) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"input": "a", "expected": "x"}\n{oops\n', "set.jsonl:2: not valid JSON"),
        ('["a", "b"]\n', "set.jsonl:1: expected a JSON object, got list"),
        ('{"input": "a"}\n', "set.jsonl:1: each line needs an `input`"),
        ("\n\n", "has no examples"),
    ],
)
def test_bad_sets_are_reported_with_the_line(tmp_path, content, message):
    path = tmp_path / "set.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidRequestError, match=message) as info:
        load_examples(path)
    assert info.value.status == 400


def test_missing_file(tmp_path):
    with pytest.raises(InvalidRequestError, match="cannot read the labelled set"):
        load_examples(tmp_path / "nope.jsonl")


def test_a_sample_is_random_reproducible_and_in_file_order(tmp_path):
    path = tmp_path / "grouped.jsonl"
    rows = [{"input": f"text {i}", "expected": "a" if i < 50 else "b"} for i in range(100)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    first = load_examples(path, sample=10, seed=3)
    assert first == load_examples(path, sample=10, seed=3)
    assert first != load_examples(path, sample=10, seed=4)
    assert {e.expected for e in first} == {"a", "b"}  # the first 10 lines are all "a"
    numbers = [int(e.input.split()[1]) for e in first]
    assert numbers == sorted(numbers) and len(set(numbers)) == 10
    assert len(load_examples(path, sample=500)) == 100  # a sample larger than the set: all
    with pytest.raises(InvalidRequestError, match="either a limit"):
        load_examples(path, limit=5, sample=5)
