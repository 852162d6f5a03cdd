"""Student (a): a small LLM prompted with the teacher's answers to the most similar inputs.

The tasks package already builds kNN few-shot prompts from an example list; this hands it the
bank's pairs (vectors come from the bank's embedding cache, so nothing is embedded twice).
"""

from __future__ import annotations

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.export import example_record
from smallfirst.errors import InvalidRequestError
from smallfirst.tasks import ClassifySpec, Task
from smallfirst.tasks.examples import Example as TaskExample
from smallfirst.tasks.examples import ExampleBank as TaskExamples
from smallfirst.tasks.spec import FewShot


def few_shot_task(task: Task, bank: ExampleBank, k: int = 4) -> Task:
    """A copy of `task` whose prompts show the k bank pairs nearest to each input."""
    summary = bank.meta().get("task") or {}
    if summary.get("kind") != task.spec.kind:
        raise InvalidRequestError(
            f"bank {bank.path} holds {summary.get('kind', 'unknown')!r} examples; "
            f"the task is {task.spec.kind!r}"
        )
    if isinstance(task.spec, ClassifySpec) and set(summary.get("labels", [])) - set(
        task.spec.label_names
    ):
        raise InvalidRequestError(f"bank {bank.path} has labels the task does not know")
    spec = task.spec.model_copy(update={"few_shot": FewShot(mode="knn", k=k), "examples": None})
    student = Task(spec, schema=task.output_model, retriever=task.retriever)
    pairs = [TaskExample(**example_record(summary, e)) for e in bank.examples()]
    student.bank = TaskExamples(pairs, embedder=bank.embedder)
    return student
