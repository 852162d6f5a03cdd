"""Bounding a schema to a token budget before it becomes a grammar."""

import json

from smallfirst.models.schema_bounds import CHARS_PER_TOKEN, bounded_schema

FACTS = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
    "required": ["facts"],
}


def longest_answer(schema):
    """The longest document the bounded schema allows (strings and arrays at their maximum)."""
    kind = schema.get("type")
    if "anyOf" in schema:
        return max((longest_answer(s) for s in schema["anyOf"]), key=lambda v: len(json.dumps(v)))
    if kind == "object":
        return {k: longest_answer(p) for k, p in schema["properties"].items()}
    if kind == "array":
        return [longest_answer(schema["items"])] * schema["maxItems"]
    if kind == "string":
        return "x" * schema.get("maxLength", 0)
    return 123456


def test_open_strings_and_arrays_get_bounds_that_fit_the_budget():
    for budget in (16, 80, 160, 512):
        bounded = bounded_schema(FACTS, budget)
        facts = bounded["properties"]["facts"]
        assert facts["maxItems"] >= 1 and facts["items"]["maxLength"] >= 1
        chars = len(json.dumps(longest_answer(bounded)))
        assert chars <= budget * CHARS_PER_TOKEN + 16
    assert "maxItems" not in FACTS["properties"]["facts"]  # the caller's schema is not changed


def test_bounds_the_schema_sets_are_kept_and_shrink_the_rest():
    schema = {
        "type": "object",
        "properties": {
            "topics": {"type": "array", "items": {"type": "string", "maxLength": 40}},
            "note": {"type": "string", "maxLength": 10},
            "when": {"type": "string", "format": "date"},
        },
    }
    bounded = bounded_schema(schema, 80)
    topics = bounded["properties"]["topics"]
    assert topics["items"]["maxLength"] == 40 and topics["maxItems"] >= 2
    assert bounded["properties"]["note"] == {"type": "string", "maxLength": 10}
    assert "maxLength" not in bounded["properties"]["when"]


def test_a_type_list_becomes_any_of_so_the_bound_survives_the_grammar():
    schema = {"type": "object", "properties": {"name": {"type": ["string", "null"]}}}
    name = bounded_schema(schema, 40)["properties"]["name"]
    assert name["anyOf"][0]["type"] == "string" and name["anyOf"][0]["maxLength"] > 0
    assert name["anyOf"][1] == {"type": "null"}


def test_shared_and_recursive_definitions_terminate():
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}},
            }
        },
        "$ref": "#/$defs/Node",
    }
    bounded = bounded_schema(schema, 100)
    assert bounded["$defs"]["Node"]["properties"]["label"]["maxLength"] > 0


def test_an_invalid_schema_is_left_for_the_grammar_converter_to_refuse():
    broken = {"type": "object", "properties": 5}
    assert bounded_schema(broken, 50) == broken
