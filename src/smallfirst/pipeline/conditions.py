"""Evaluating `run_if` / `escalate_if` against the input and the steps done so far."""

from __future__ import annotations

from smallfirst.errors import ConfigError
from smallfirst.models.registry import Registry
from smallfirst.pipeline.results import StepResult
from smallfirst.pipeline.spec import Condition
from smallfirst.target import Route, Targets
from smallfirst.types import ChatRequest, Message

LARGE_TIERS = ("medium", "large")


def holds(
    condition: Condition, text: str, done: dict[str, StepResult], registry: Registry
) -> str | None:
    """The reason the condition holds (for the ledger), or None when it does not."""
    if condition.input_chars_over is not None and len(text) > condition.input_chars_over:
        return f"input has {len(text)} > {condition.input_chars_over} characters"
    if condition.step_failed and done[condition.step_failed].status == "failed":
        return f"step {condition.step_failed!r} failed"
    if condition.label is not None:
        label = (done[condition.label.step].output or {}).get("label")
        if label in condition.label.values:
            return f"step {condition.label.step!r} labelled it {label!r}"
    if condition.confidence_below is not None:
        test = condition.confidence_below
        confidence = (done[test.step].output or {}).get("confidence")
        if confidence is None or confidence < test.value:
            return f"step {test.step!r} confidence {confidence} < {test.value}"
    if condition.router is not None:
        route = _routed(condition.router, text, registry)
        if route.model.tier in LARGE_TIERS:
            reason = route.decision.reason if route.decision else route.model.name
            return f"router {condition.router}: {reason}"
    return None


def _routed(name: str, text: str, registry: Registry) -> Route:
    """Where the gateway would send `text` under `name`: `Targets.router`, as for a cascade's
    `router:` (an unknown name is its 404 listing every name; a model or cascade name says
    what it is), and the router's choice held to the model's capabilities and context, as
    on every other path."""
    try:
        target = Targets(registry).router(name)
    except ConfigError as exc:
        raise ConfigError(f"router: {exc.message}") from exc
    return target.route(ChatRequest([Message("user", text)]))
