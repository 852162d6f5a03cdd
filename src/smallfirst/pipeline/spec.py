"""Pipeline specs: steps with a task or prompt, a model or route, inputs from earlier steps,
and conditions. Validated once; a wrong file names the bad key."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smallfirst.errors import ConfigError

INPUT = "input"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(_Strict):
    step: str
    values: list[str] = Field(alias="in", min_length=1)


class ConfidenceBelow(_Strict):
    step: str
    value: float = Field(ge=0, le=1)


class Condition(_Strict):
    """True when any of the given tests holds."""

    input_chars_over: int | None = Field(default=None, ge=0)
    router: str | None = None
    """A router name (`auto`, `router-knn-0.5`): true when it picks a medium or large model."""
    step_failed: str | None = None
    label: LabelIn | None = None
    confidence_below: ConfidenceBelow | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise ValueError(
                "a condition needs at least one of: input_chars_over, router, step_failed, "
                "label, confidence_below"
            )
        return self

    def steps(self) -> set[str]:
        named = {self.step_failed} if self.step_failed else set()
        named |= {c.step for c in (self.label, self.confidence_below) if c is not None}
        return named


class StepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    task: dict[str, Any] | str | None = None
    """An inline task spec, or the path of a task YAML (relative to the pipeline file)."""
    prompt: str | None = None
    """A plain chat step: a template with `{input}` and `{step_name}` placeholders."""
    input: str = "{input}"
    """The task's input, as a template."""
    model: str | None = None
    """A configured model or router; default: the task's model or `default`."""
    max_tokens: int = Field(default=256, ge=1, le=8192)
    chunk_chars: int | None = Field(default=None, ge=200)
    """Split a long input into pieces of about this many characters; run the step on each."""
    run_if: Condition | None = None
    """Run only when this holds (e.g. deep analysis only for documents that need it)."""
    escalate_if: Condition | None = None
    escalate_to: str | None = None
    """The model used instead of `model` when `escalate_if` holds."""
    escalate_on_failure: bool | None = None
    """Override the pipeline's `escalate_on_failure` for this step."""

    @model_validator(mode="after")
    def _one_action(self) -> StepSpec:
        if (self.task is None) == (self.prompt is None):
            raise ValueError(f"step {self.name!r}: give exactly one of `task` or `prompt`")
        if (self.escalate_if is None) != (self.escalate_to is None):
            raise ValueError(f"step {self.name!r}: escalate_if and escalate_to go together")
        return self

    def needs(self) -> set[str]:
        """Steps whose output this step reads or whose result its conditions test."""
        fields = {f for t in (self.input, self.prompt or "") for f in _fields(t)}
        for condition in (self.run_if, self.escalate_if):
            if condition is not None:
                fields |= condition.steps()
        return fields - {INPUT}


class PipelineSpec(_Strict):
    name: str = Field(default="pipeline", pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    escalate_on_failure: bool = True
    """A step whose model gives invalid or empty output after its repair turn goes up a tier
    (only the pieces that failed), instead of failing itself and the steps that need it."""
    steps: list[StepSpec] = Field(min_length=1)

    def escalates(self, step: StepSpec) -> bool:
        if step.escalate_on_failure is not None:
            return step.escalate_on_failure
        return self.escalate_on_failure

    @model_validator(mode="after")
    def _graph(self) -> PipelineSpec:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        for step in self.steps:
            unknown = step.needs() - set(names)
            if unknown:
                raise ValueError(f"step {step.name!r} refers to unknown steps: {sorted(unknown)}")
        order_levels(self.steps)
        return self


def _fields(template: str) -> set[str]:
    try:
        return {name.split(".")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ValueError(f"bad template {template[:60]!r}: {exc}") from None


def order_levels(steps: list[StepSpec]) -> list[list[StepSpec]]:
    """Steps grouped so each group depends only on earlier groups (run a group concurrently)."""
    remaining = {s.name: s for s in steps}
    done: set[str] = set()
    levels: list[list[StepSpec]] = []
    while remaining:
        ready = [s for s in remaining.values() if s.needs() <= done]
        if not ready:
            raise ValueError(f"steps depend on each other in a cycle: {sorted(remaining)}")
        levels.append(ready)
        done |= {s.name for s in ready}
        for step in ready:
            del remaining[step.name]
    return levels


def parse_pipeline(data: Any, source: str = "<pipeline>") -> PipelineSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a pipeline must be a mapping with `steps`")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
            + (
                "unknown key"
                if e["type"] == "extra_forbidden"
                else e["msg"].removeprefix("Value error, ")
            )
            for e in exc.errors()
        ]
        raise ConfigError(f"{source}: invalid pipeline\n  " + "\n  ".join(problems)) from None


def load_pipeline(path: str | Path) -> PipelineSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_pipeline(data, source=str(path))
