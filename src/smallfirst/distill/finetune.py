"""LoRA fine-tuning of a small causal LM on exported pairs, where a GPU is at hand.

Runs TRL's SFTTrainer with a peft LoRA adapter on a CUDA GPU. Where there is no GPU, or
peft / trl / datasets are not installed, it does nothing and says exactly what is missing and
what to do instead (`pip install 'smallfirst[finetune]'` on a GPU machine, or upload the
OpenAI-format export to a hosted fine-tuning service). CPU LoRA on a 2-core box would take
days for a useful run, so it is refused rather than attempted.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from smallfirst.errors import InvalidRequestError, SmallfirstError

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets")


class FinetuneUnavailableError(SmallfirstError):
    """This machine cannot fine-tune (no CUDA GPU or missing packages)."""

    status = 503
    error_type = "finetune_unavailable"


@dataclass(frozen=True, slots=True)
class LoraSettings:
    base_model: str
    epochs: float = 2.0
    rank: int = 16
    learning_rate: float = 2e-4
    batch_size: int = 8


def missing_requirements() -> list[str]:
    """What stops a LoRA run here, in words; empty when it can run."""
    problems = [
        f"python package {name!r} is not installed"
        for name in PACKAGES
        if importlib.util.find_spec(name) is None
    ]
    if importlib.util.find_spec("torch") is not None:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"no CUDA GPU is visible to torch {torch.__version__}")
    return problems


def check_training_file(path: str | Path) -> int:
    """Count records, failing on the first line that is neither export format."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequestError(f"training file {path} does not exist", param="data")
    count = 0
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise InvalidRequestError(f"{path}:{number}: not valid JSON") from None
            if not isinstance(record, dict) or not (
                "messages" in record or {"prompt", "completion"} <= record.keys()
            ):
                raise InvalidRequestError(
                    f"{path}:{number}: expected {{'messages': [...]}} or "
                    "{'prompt': ..., 'completion': ...} (see `smallfirst distill export`)"
                )
            count += 1
    if not count:
        raise InvalidRequestError(f"training file {path} is empty")
    return count


def finetune(data: str | Path, out_dir: str | Path, settings: LoraSettings) -> Path:
    """Train a LoRA adapter on `data` into `out_dir`; raises FinetuneUnavailableError here."""
    check_training_file(data)
    problems = missing_requirements()
    if problems:
        raise FinetuneUnavailableError(
            "LoRA fine-tuning cannot run on this machine: "
            + "; ".join(problems)
            + ". Run it on a machine with a CUDA GPU after `pip install 'smallfirst[finetune]'`,"
            " or upload an `--format openai` export to a hosted fine-tuning service."
        )
    return _train(Path(data), Path(out_dir), settings)


def _train(data: Path, out_dir: Path, settings: LoraSettings) -> Path:  # pragma: no cover - GPU
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset("json", data_files=str(data), split="train")
    args = SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        logging_steps=10,
        save_strategy="epoch",
        bf16=torch.cuda.is_bf16_supported(),
        report_to=[],
    )
    lora = LoraConfig(
        r=settings.rank,
        lora_alpha=2 * settings.rank,
        lora_dropout=0.05,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=settings.base_model, train_dataset=dataset, args=args, peft_config=lora
    )
    trainer.train()
    trainer.save_model(str(out_dir))
    return out_dir
