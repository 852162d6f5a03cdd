"""Closing a JSON answer that `max_tokens` cut off, so a constrained answer always parses.

The grammar guarantees the text so far is the start of a document the schema allows; what is
missing is the end. `closing_suffix` scans the text, keeping the open objects, arrays and
scalars with the schema each sits in, and returns what to append: the open string closed,
a half-written number or literal finished, every required key still missing given its
shortest valid value, and the brackets closed. Only appending keeps streaming possible: the
text already sent never changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]
LITERALS = {"t": "true", "f": "false", "n": "null"}
NUMBER_CHARS = set("0123456789+-.eE")


@dataclass
class _Frame:
    """An open object or array, what it expects next and the schema it follows."""

    kind: str  # "object" or "array"
    schema: Schema
    state: str
    """object: key_or_end, key, colon, value, comma_or_end; array: value_or_end, value,
    comma_or_end."""
    keys: list[str] = field(default_factory=list)
    items: int = 0


@dataclass
class _Scalar:
    kind: str  # "string", "key", "number" or "literal"
    text: str = ""
    escape: str = ""
    """The escape sequence in progress inside a string (`\\`, `\\u12`)."""


class JsonCloser:
    """Fed an answer as it streams; `suffix()` says what would complete it."""

    def __init__(self, schema: Schema) -> None:
        self.root = schema
        self.defs: dict[str, Schema] = {**schema.get("definitions", {}), **schema.get("$defs", {})}
        self.stack: list[_Frame] = []
        self.scalar: _Scalar | None = None
        self.done = False

    # -- scanning ---------------------------------------------------------------------------
    def feed(self, text: str) -> None:
        for char in text:
            self._char(char)

    def _char(self, char: str) -> None:
        scalar = self.scalar
        if scalar is not None and scalar.kind in ("string", "key"):
            self._string_char(scalar, char)
            return
        if scalar is not None and scalar.kind == "number":
            if char in NUMBER_CHARS:
                scalar.text += char
                return
            self.scalar = None
            self._value_done()
        elif scalar is not None and scalar.kind == "literal":
            scalar.text += char
            if scalar.text == LITERALS[scalar.text[0]]:
                self.scalar = None
                self._value_done()
            return
        if char.isspace():
            return
        frame = self.stack[-1] if self.stack else None
        if frame is None or frame.state in ("value", "value_or_end"):
            if frame is not None and frame.state == "value_or_end" and char == "]":
                self._close()
            else:
                self._value_start(char)
        elif frame.state in ("key_or_end", "key"):
            if char == '"':
                self.scalar = _Scalar("key")
            elif char == "}":
                self._close()
        elif frame.state == "colon" and char == ":":
            frame.state = "value"
        elif frame.state == "comma_or_end":
            if char == ",":
                frame.state = "key" if frame.kind == "object" else "value"
            elif char in "}]":
                self._close()

    def _string_char(self, scalar: _Scalar, char: str) -> None:
        if scalar.escape:
            scalar.escape += char
            if not scalar.escape.startswith("\\u") or len(scalar.escape) == 6:
                scalar.text += json.loads(f'"{scalar.escape}"') if scalar.kind == "key" else ""
                scalar.escape = ""
        elif char == "\\":
            scalar.escape = char
        elif char == '"':
            self.scalar = None
            if scalar.kind == "key":
                frame = self.stack[-1]
                frame.keys.append(scalar.text)
                frame.state = "colon"
            else:
                self._value_done()
        else:
            scalar.text += char

    def _value_start(self, char: str) -> None:
        if char == "{":
            self.stack.append(_Frame("object", self._schema_here(), "key_or_end"))
        elif char == "[":
            self.stack.append(_Frame("array", self._schema_here(), "value_or_end"))
        elif char == '"':
            self.scalar = _Scalar("string")
        elif char in LITERALS:
            self.scalar = _Scalar("literal", char)
        else:
            self.scalar = _Scalar("number", char)

    def _value_done(self) -> None:
        if not self.stack:
            self.done = True
            return
        frame = self.stack[-1]
        frame.items += frame.kind == "array"
        frame.state = "comma_or_end"

    def _close(self) -> None:
        self.stack.pop()
        self._value_done()

    # -- schema positions -------------------------------------------------------------------
    def _schema_here(self) -> Schema:
        """The schema of the value that starts at the current position."""
        if not self.stack:
            return self.root
        frame = self.stack[-1]
        schema = self.resolve(frame.schema)
        if frame.kind == "object":
            key = frame.keys[-1] if frame.keys else ""
            extra = schema.get("additionalProperties")
            return schema.get("properties", {}).get(key, extra if isinstance(extra, dict) else {})
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and frame.items < len(prefix):
            return prefix[frame.items]
        items = schema.get("items")
        return items if isinstance(items, dict) else {}

    def resolve(self, schema: Schema) -> Schema:
        """Follow `$ref`s, and pick the object or array form out of an `anyOf`."""
        seen = set()
        while "$ref" in schema and schema["$ref"] not in seen:
            seen.add(schema["$ref"])
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        for option in schema.get("anyOf") or schema.get("oneOf") or []:
            option = self.resolve(option)
            if option.get("type") in ("object", "array") or "properties" in option:
                return option
        return schema

    # -- closing ----------------------------------------------------------------------------
    def suffix(self) -> str:
        """What to append so the text is a complete document."""
        if self.done:
            return ""
        if not self.stack and self.scalar is None:
            return self.shortest(self.root)  # nothing written yet
        out = self._finish_scalar()
        while self.stack:
            out += self._finish_frame(self.stack.pop())
        return out

    def _finish_scalar(self) -> str:
        scalar, self.scalar = self.scalar, None
        if scalar is None:
            return ""
        if scalar.kind in ("string", "key"):
            out = _finish_escape(scalar.escape)
            if scalar.kind == "key":
                frame = self.stack[-1]
                name = self._key_starting(frame, scalar.text)
                frame.keys.append(name)
                frame.state = "colon"
                return out + name[len(scalar.text) :] + '"'
            self._value_done()
            return out + '"'
        if scalar.kind == "number":
            out = "0" if scalar.text[-1] in "+-.eE" else ""
        else:
            out = LITERALS[scalar.text[0]][len(scalar.text) :]
        self._value_done()
        return out

    def _key_starting(self, frame: _Frame, start: str) -> str:
        names = list(self.resolve(frame.schema).get("properties", {}))
        return next((n for n in names if n.startswith(start) and n not in frame.keys), start)

    def _finish_frame(self, frame: _Frame) -> str:
        schema = self.resolve(frame.schema)
        out = ""
        if frame.kind == "object":
            if frame.state == "colon":
                out += ":"
                frame.state = "value"
            if frame.state == "value":
                self.stack.append(frame)
                out += self.shortest(self._schema_here())
                self.stack.pop()
                frame.state = "comma_or_end"
            missing = self._missing_keys(frame, schema)
            if frame.state == "key" and not missing:
                missing = [n for n in schema.get("properties", {}) if n not in frame.keys][:1]
            first = frame.state in ("key_or_end", "key")
            for key in missing:
                value = self.shortest(schema.get("properties", {}).get(key, {}))
                out += ("" if first else ",") + json.dumps(key) + ":" + value
                first = False
            out += "}"
        else:
            item = items if isinstance(items := schema.get("items"), dict) else {}
            needed = max(schema.get("minItems", 0) - frame.items, frame.state == "value")
            first = frame.state in ("value_or_end", "value")
            for _ in range(needed):
                out += ("" if first else ",") + self.shortest(item)
                first = False
            out += "]"
        if self.stack:
            parent = self.stack[-1]
            parent.items += parent.kind == "array"
            parent.state = "comma_or_end"
        return out

    def _missing_keys(self, frame: _Frame, schema: Schema) -> list[str]:
        return [k for k in schema.get("required", []) if k not in frame.keys]

    def shortest(self, schema: Schema) -> str:
        """The shortest JSON text this schema accepts (as far as the grammar can tell)."""
        seen: set[str] = set()
        while "$ref" in schema and schema["$ref"] not in seen:
            seen.add(schema["$ref"])
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        if "const" in schema:
            return json.dumps(schema["const"], ensure_ascii=False)
        if schema.get("enum"):
            return json.dumps(schema["enum"][0], ensure_ascii=False)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return min((self.shortest(o) for o in options), key=len)
        kind = schema.get("type")
        if isinstance(kind, list):
            return min((self.shortest({**schema, "type": k}) for k in kind), key=len)
        if kind == "object" or (kind is None and "properties" in schema):
            props = schema.get("properties", {})
            parts = [
                json.dumps(k) + ":" + self.shortest(props.get(k, {}))
                for k in schema.get("required", [])
            ]
            return "{" + ",".join(parts) + "}"
        if kind == "array":
            item = items if isinstance(items := schema.get("items"), dict) else {}
            items = [self.shortest(item)] * schema.get("minItems", 0)
            return "[" + ",".join(items) + "]"
        if kind == "string":
            return json.dumps(" " * schema.get("minLength", 0))
        if kind in ("integer", "number"):
            low = schema.get("minimum", 0)
            return str(int(low) if kind == "integer" else low) if low > 0 else "0"
        if kind == "boolean":
            return "false"
        return "null"


def _finish_escape(escape: str) -> str:
    if not escape:
        return ""
    if escape == "\\":
        return "\\"
    return "0" * (6 - len(escape))  # a `\u` escape with some of its four hex digits


def closing_suffix(text: str, schema: Schema) -> str:
    """What to append to `text` (a cut-off answer the grammar for `schema` allowed) so that it
    is a complete JSON document; "" when it is complete already."""
    closer = JsonCloser(schema)
    closer.feed(text)
    return closer.suffix()
