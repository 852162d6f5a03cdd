"""A picklable description of the per-item work, so Ray actors can rebuild it on their node."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smallfirst.batch.processors import ModelProcessor, Processor, TaskProcessor
from smallfirst.config import load_config
from smallfirst.errors import InvalidRequestError
from smallfirst.ledger.sink import RowSink
from smallfirst.models.registry import Registry


@dataclass(frozen=True, slots=True)
class WorkSpec:
    model: str | None = None
    task: str | None = None
    """Path of a task spec file (YAML)."""
    pipeline: str | None = None
    """Path of a pipeline spec file (YAML)."""
    max_tokens: int | None = 256
    config: str | None = None

    def __post_init__(self) -> None:
        chosen = [x for x in (self.task, self.pipeline) if x]
        if len(chosen) > 1:
            raise InvalidRequestError("give only one of --task and --pipeline")

    def registry(self) -> Registry:
        return Registry(load_config(self.config))

    def build(self, registry: Registry | None = None, ledger: RowSink | None = None) -> Processor:
        """The processor; with a `ledger`, every item it processes is recorded there."""
        registry = registry or self.registry()
        if self.task:
            from smallfirst.tasks import Task

            return TaskProcessor(registry, Task.from_yaml(Path(self.task)), self.model, ledger)
        if self.pipeline:
            from smallfirst.batch.processors import PipelineProcessor
            from smallfirst.pipeline import Pipeline

            return PipelineProcessor(registry, Pipeline.from_yaml(Path(self.pipeline)), ledger)
        return ModelProcessor(registry, self.model or "default", self.max_tokens, ledger)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
