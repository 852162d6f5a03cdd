"""Tasks for small models: classify, extract, summarize, answer.

A user declares what they want (labels, a schema, a length); smallfirst writes the prompt,
holds the model to the output space and returns a typed result.
"""

from smallfirst.tasks.output import TaskOutputError
from smallfirst.tasks.results import (
    AnswerResult,
    ClassifyResult,
    ExtractResult,
    TaskResult,
    TextResult,
)
from smallfirst.tasks.retrieval import Chunk, Retriever, StaticContext
from smallfirst.tasks.spec import (
    AnswerSpec,
    ClassifySpec,
    ExtractSpec,
    SummarizeSpec,
    TaskSpec,
    load_spec,
    parse_spec,
)
from smallfirst.tasks.task import Task

__all__ = [
    "AnswerResult",
    "AnswerSpec",
    "Chunk",
    "ClassifyResult",
    "ClassifySpec",
    "ExtractResult",
    "ExtractSpec",
    "Retriever",
    "StaticContext",
    "SummarizeSpec",
    "Task",
    "TaskOutputError",
    "TaskResult",
    "TaskSpec",
    "TextResult",
    "load_spec",
    "parse_spec",
]
