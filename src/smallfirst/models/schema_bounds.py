"""Bounding a JSON schema so its longest answer fits a token budget, before it becomes a grammar.

A grammar built from `{"type": "string"}` lets a small model write one string until
`max_tokens` cuts it, and the JSON never closes. Here every string without `maxLength` and
every array without `maxItems` gets a bound derived from the budget: the budget is shared
between an object's open-ended properties, and an array's share between its items. Bounds the
schema already sets are kept. The estimate is in tokens of about `CHARS_PER_TOKEN` characters,
so the model nearly always closes the object itself; `json_closing` covers the rare rest.
"""

from __future__ import annotations

import copy
import math
from typing import Any

CHARS_PER_TOKEN = 3
"""Characters per token for the estimate (English is ~4 on Gemma's tokenizer; a margin)."""
ITEM_TOKENS = 24
"""An array item's share when the array has no `maxItems`: a phrase or a short sentence."""
MIN_STRING_TOKENS = 4
SCALAR_TOKENS = {"integer": 3, "number": 5, "boolean": 1, "null": 1}
UNBOUNDED = math.inf

Schema = dict[str, Any]


def bounded_schema(schema: Schema, max_tokens: int) -> Schema:
    """A copy of `schema` whose every string and array is bounded to fit `max_tokens`."""
    return _Bounder(copy.deepcopy(schema)).bound(max_tokens)


class _Bounder:
    def __init__(self, root: Schema) -> None:
        self.root = root
        self.defs: dict[str, Schema] = {
            **root.get("definitions", {}),
            **root.get("$defs", {}),
        }
        self.done_refs: set[str] = set()

    def bound(self, budget: float) -> Schema:
        self._visit(self.root, budget)
        return self.root

    def _visit(self, schema: Any, budget: float) -> None:
        if not isinstance(schema, dict):
            return
        _split_type_list(schema)
        if "$ref" in schema:
            self._visit_ref(schema["$ref"], budget)
        for key in ("anyOf", "oneOf"):
            for option in schema.get(key) or []:
                self._visit(option, budget)
        kind = schema.get("type")
        if kind == "object" or (kind is None and "properties" in schema):
            self._visit_object(schema, budget)
        elif kind == "array" or (kind is None and "items" in schema):
            self._visit_array(schema, budget)
        elif kind == "string" and _open_string(schema):
            schema["maxLength"] = max(
                schema.get("minLength", 0),
                int(max(budget - 2, MIN_STRING_TOKENS) * CHARS_PER_TOKEN),
            )

    def _visit_ref(self, ref: str, budget: float) -> None:
        """A definition is bounded once, with the share of the first place that uses it."""
        name = ref.rsplit("/", 1)[-1]
        if name in self.defs and name not in self.done_refs:
            self.done_refs.add(name)
            self._visit(self.defs[name], budget)

    def _visit_object(self, schema: Schema, budget: float) -> None:
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            return  # not a valid schema: the grammar converter says what is wrong
        overhead = 2 + sum(_tokens_of_text(key) + 3 for key in properties)
        fixed = {key: self.cost(prop) for key, prop in properties.items()}
        open_keys = [key for key, cost in fixed.items() if cost == UNBOUNDED]
        if not open_keys:
            return
        spent = sum(cost for cost in fixed.values() if cost != UNBOUNDED)
        share = max(budget - overhead - spent, 0) / len(open_keys)
        for key in open_keys:
            self._visit(properties[key], share)

    def _visit_array(self, schema: Schema, budget: float) -> None:
        items = schema.get("items")
        if isinstance(items, list) or not isinstance(items, dict):
            return
        room = max(budget - 2, 1)
        if "maxItems" in schema:
            self._visit(items, room / max(schema["maxItems"], 1) - 1)
            return
        item_cost = self.cost(items)
        per_item = min(ITEM_TOKENS, room) if item_cost == UNBOUNDED else item_cost
        count = max(int(room // (per_item + 1)), schema.get("minItems", 0), 1)
        schema["maxItems"] = count
        if item_cost == UNBOUNDED:
            self._visit(items, room / count - 1)

    def cost(self, schema: Any, refs: frozenset[str] = frozenset()) -> float:
        """The most tokens a value of this schema can take, or UNBOUNDED."""
        if not isinstance(schema, dict):
            return UNBOUNDED
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in refs or name not in self.defs:
                return UNBOUNDED  # recursive or unknown: no finite bound
            return self.cost(self.defs[name], refs | {name})
        if "const" in schema:
            return _tokens_of_text(str(schema["const"])) + 1
        if "enum" in schema:
            return max((_tokens_of_text(str(v)) + 1 for v in schema["enum"]), default=1)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return max(self.cost(option, refs) for option in options)
        kind = schema.get("type")
        if isinstance(kind, list):
            return max(self.cost({**schema, "type": k}, refs) for k in kind)
        if kind in SCALAR_TOKENS:
            return SCALAR_TOKENS[kind]
        if kind == "string":
            return UNBOUNDED if _open_string(schema) else _string_cost(schema)
        if kind == "array" and "maxItems" in schema and isinstance(schema.get("items"), dict):
            return 2 + schema["maxItems"] * (self.cost(schema["items"], refs) + 1)
        if kind == "object" and isinstance(schema.get("properties"), dict):
            props = schema["properties"]
            parts = [_tokens_of_text(k) + 3 + self.cost(p, refs) for k, p in props.items()]
            return 2 + sum(parts)
        return UNBOUNDED


def _open_string(schema: Schema) -> bool:
    """A string whose length nothing limits (patterns and formats have their own grammar)."""
    return not any(key in schema for key in ("maxLength", "pattern", "format", "enum", "const"))


def _string_cost(schema: Schema) -> float:
    if "maxLength" in schema:
        return 2 + math.ceil(schema["maxLength"] / CHARS_PER_TOKEN)
    return 12  # a format such as a date or a short pattern


def _tokens_of_text(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _split_type_list(schema: Schema) -> None:
    """`type: [string, null]` as `anyOf`, keeping the keywords: the grammar converter turns a
    type list into bare types and would drop a `maxLength`."""
    kinds = schema.get("type")
    if not isinstance(kinds, list):
        return
    rest = {k: v for k, v in schema.items() if k != "type"}
    schema.clear()
    schema["anyOf"] = [{**copy.deepcopy(rest), "type": kind} for kind in kinds]
