"""Holding a model to the task's output space, and checking what came back.

Three ways, picked from the backend: llama.cpp gets a grammar (it cannot write anything else),
OpenAI-compatible chat servers get `response_format` json_schema, and everything else is
validated after the fact. A failed check raises `OutputInvalid`; the runner then tries one
repair and finally raises `TaskOutputError`, which cascades use to escalate.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from smallfirst.config import ModelConfig
from smallfirst.errors import UpstreamError
from smallfirst.models.capabilities import capabilities_of
from smallfirst.types import TokenLogprob, Usage

Constraint = Literal["grammar", "response_format", "none"]
FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class TaskOutputError(UpstreamError):
    """A model's task output stayed invalid after one repair attempt (a label not in the list,
    JSON that does not match the schema). Cascades catch it to escalate to a larger model."""

    code = "invalid_task_output"

    def __init__(
        self,
        message: str,
        *,
        outputs: list[str] | None = None,
        usage: Usage | None = None,
        tries: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.outputs = list(outputs or [])
        """Every raw output tried, first attempt first."""
        self.usage = usage or Usage()
        """The tokens those outputs took: a failure is not free."""
        self.tries: list[Any] = list(tries or [])
        """Every model's `Attempt` (set by `Task.run`), with its tokens and cost."""


class OutputInvalid(ValueError):
    """One output failed its check; the message is fed back to the model in the repair turn."""


def constraint_for(config: ModelConfig) -> Constraint:
    """How this model can be held to an output space."""
    capabilities = capabilities_of(config)
    if capabilities.grammar:
        return "grammar"
    if capabilities.json_schema:
        return "response_format"
    return "none"


def label_choices(labels: list[str]) -> list[str]:
    """What a grammar-capable model may write: one label, with or without a leading space
    (the space keeps the base model's natural tokenization after `Label:`)."""
    return [*labels, *(f" {label}" for label in labels)]


def label_schema(labels: list[str]) -> dict[str, Any]:
    """Structured output must be a JSON object on OpenAI, so the label sits in one."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The form OpenAI strict mode accepts: every object closed and every key required
    (a key that was optional becomes nullable instead)."""
    out = dict(schema)
    if out.get("type") == "object" and isinstance(out.get("properties"), dict):
        required = set(out.get("required", []))
        props = {}
        for key, prop in out["properties"].items():
            prop = strict_schema(prop)
            props[key] = prop if key in required or _nullable(prop) else _or_null(prop)
        out.update(properties=props, required=list(props), additionalProperties=False)
    for key in ("items",):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [strict_schema(s) for s in out[key]]
    if isinstance(out.get("$defs"), dict):
        out["$defs"] = {k: strict_schema(v) for k, v in out["$defs"].items()}
    out.pop("default", None)
    return out


def _nullable(prop: dict[str, Any]) -> bool:
    kind = prop.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(s.get("type") == "null" for s in prop.get("anyOf", []))


def _or_null(prop: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [prop, {"type": "null"}]}


def parse_label(text: str, labels: list[str]) -> str:
    """The label in the output: exact, then case-insensitive, then `{"label": ...}`."""
    cleaned = FENCE.sub("", text.strip()).strip().strip("\"'`.").strip()
    if cleaned.startswith("{"):
        try:
            value = json.loads(cleaned)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("label"), str):
            cleaned = value["label"].strip()
    if cleaned in labels:
        return cleaned
    folded = {label.casefold(): label for label in labels}
    if cleaned.casefold() in folded:
        return folded[cleaned.casefold()]
    shown = cleaned if len(cleaned) <= 80 else cleaned[:77] + "..."
    raise OutputInvalid(f"{shown!r} is not one of the labels: {', '.join(labels)}")


def label_confidence(logprobs: list[TokenLogprob] | None) -> float | None:
    """Probability the model gave the tokens it wrote (their joint probability). Taken before
    the grammar masks other tokens, so it is lower when the model wanted to write something
    off the list: exactly when its answer deserves less trust."""
    if not logprobs:
        return None
    tokens = [t for t in logprobs if t.token.strip()] or logprobs
    return math.exp(sum(t.logprob for t in tokens))


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in the output, tolerating code fences and chatter around it."""
    cleaned = FENCE.sub("", text.strip()).strip()
    start, end = cleaned.find("{"), cleaned.rfind("}")
    if start < 0:
        raise OutputInvalid("the output is not a JSON object")
    try:
        value = json.loads(cleaned[start : end + 1] if end > start else cleaned[start:])
    except json.JSONDecodeError as exc:
        raise OutputInvalid(f"the output is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise OutputInvalid("the output is not a JSON object")
    return value


def validate_fields(
    data: dict[str, Any], schema: dict[str, Any], model: type[BaseModel] | None
) -> Any:
    """A pydantic instance when a model class is known, else the dict checked by the schema."""
    if model is not None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise OutputInvalid(_pydantic_errors(exc)) from None
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.path) or "(object)"
        raise OutputInvalid(f"{where}: {first.message}")
    return data


def _pydantic_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(object)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
