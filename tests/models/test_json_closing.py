"""Closing cut-off JSON: every prefix of a valid answer closes into a document the schema takes."""

import json

import jsonschema
import pytest

from smallfirst.models.json_closing import JsonCloser, closing_suffix

SCHEMA = {
    "type": "object",
    "properties": {
        "facts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "count": {"type": "integer"},
        "ok": {"type": "boolean"},
        "owner": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "detail": {
            "type": "object",
            "properties": {"score": {"type": "number"}, "note": {"type": "string"}},
            "required": ["score", "note"],
        },
    },
    "required": ["facts", "count", "ok", "detail"],
}
ANSWER = {
    "facts": ['a "quoted" \u00e9 \\ fact', "b"],
    "count": -12,
    "ok": True,
    "owner": None,
    "detail": {"score": 1.5e-3, "note": "zz"},
}


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_every_prefix_closes_into_a_schema_valid_document(ascii_only, separators):
    full = json.dumps(ANSWER, ensure_ascii=ascii_only, separators=separators)
    for end in range(len(full) + 1):
        text = full[:end]
        closed = text + closing_suffix(text, SCHEMA)
        jsonschema.validate(json.loads(closed), SCHEMA)


def test_a_complete_answer_needs_nothing():
    assert closing_suffix(json.dumps(ANSWER), SCHEMA) == ""


def test_nothing_written_gives_the_shortest_valid_document():
    closed = closing_suffix("", SCHEMA)
    jsonschema.validate(json.loads(closed), SCHEMA)


def test_a_half_written_key_is_finished_from_the_schema():
    assert closing_suffix('{"fac', SCHEMA).startswith('ts":[')


def test_refs_are_followed():
    schema = {
        "$defs": {
            "Item": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        },
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["items"],
    }
    text = '{"items": [{"n": 1}, {"'
    jsonschema.validate(json.loads(text + closing_suffix(text, schema)), schema)


def test_fed_in_pieces_as_it_streams():
    pieces = ['{"facts": ["on', "e", '", "tw']
    closer = JsonCloser(SCHEMA)
    for piece in pieces:
        closer.feed(piece)
    closed = "".join(pieces) + closer.suffix()
    assert json.loads(closed)["facts"] == ["one", "tw"]
