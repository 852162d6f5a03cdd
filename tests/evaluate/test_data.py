"""Loading the labelled set: aliases, limits, and errors that name the line."""

from __future__ import annotations

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
