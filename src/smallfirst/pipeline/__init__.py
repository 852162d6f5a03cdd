"""Pipelines: a document job split into small-model steps; only the hard part escalates."""

from smallfirst.pipeline.pipeline import Pipeline
from smallfirst.pipeline.results import PipelineResult, StepResult
from smallfirst.pipeline.spec import PipelineSpec, load_pipeline, parse_pipeline

__all__ = [
    "Pipeline",
    "PipelineResult",
    "PipelineSpec",
    "StepResult",
    "load_pipeline",
    "parse_pipeline",
]
