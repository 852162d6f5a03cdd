"""Distillation: a large teacher labels inputs, small students learn the task from the pairs.

`TeacherRun` fills an `ExampleBank` (SQLite + MiniLM index, `nearest(text, k)` for kNN
few-shot; `few_shot_task` hands it to a task); `train_student` builds the tier-0
`TinyClassifier`; `export_bank` writes fine-tuning JSONL; `prepare_finetune` /
`run_finetune` train a LoRA adapter for the embedded model (CPU or GPU).
"""

from smallfirst.distill.bank import Example, ExampleBank, bank_path
from smallfirst.distill.export import export_bank
from smallfirst.distill.fewshot import few_shot_task
from smallfirst.distill.finetune import FinetuneSettings, prepare_finetune, run_finetune
from smallfirst.distill.student import Prediction, TinyClassifier, train_from_bank, train_student
from smallfirst.distill.teacher import LabelProgress, LabelSettings, TeacherRun

__all__ = [
    "Example",
    "ExampleBank",
    "FinetuneSettings",
    "LabelProgress",
    "LabelSettings",
    "Prediction",
    "TeacherRun",
    "TinyClassifier",
    "bank_path",
    "export_bank",
    "few_shot_task",
    "prepare_finetune",
    "run_finetune",
    "train_from_bank",
    "train_student",
]
