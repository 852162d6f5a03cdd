"""Fine-tune the embedded model on a bank: teacher pairs in, a llama.cpp LoRA adapter out.

`prepare_finetune` does every check that can fail (bank size, base model, task kind, memory)
and tokenizes the pairs, in seconds and before any weights are loaded; `run_finetune` loads
the base into transformers, trains (`lora_train`), and converts the best adapter to GGUF
(`lora_gguf`) for the embedded backend to serve on the unchanged quantised base (`adapter:`
in smallfirst.yaml).
Training runs on a CUDA GPU when torch sees one, on the CPU otherwise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.config import EMBEDDED_MODEL_NAME, load_config, state_dir
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.lora_base import (
    BaseModel,
    available_bytes,
    check_memory,
    gguf_vocab,
    load_for_training,
    resolve_base,
    training_bytes,
)
from smallfirst.distill.lora_gguf import convert_adapter
from smallfirst.distill.lora_pairs import Pair, bank_task, training_pair
from smallfirst.distill.lora_train import TokenPair, TrainSettings, TrainState, train_lora
from smallfirst.errors import InvalidRequestError
from smallfirst.tasks import Task
from smallfirst.tasks.spec import TaskSpec


@dataclass(frozen=True, slots=True)
class FinetuneSettings:
    base: str = EMBEDDED_MODEL_NAME
    valid_share: float = 0.1
    min_valid: int = 2
    """Fewest held-out pairs (and fewest training pairs) a run accepts."""
    max_tokens: int = 1024
    """Pairs longer than this (prompt + answer) are left out of training."""
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass(slots=True)
class FinetunePlan:
    """A checked run: what trains on what, where it goes, and what it needs."""

    bank: str
    task: Task
    base: BaseModel
    train: list[TokenPair]
    valid: list[TokenPair]
    skipped_long: int
    needed_bytes: int
    device: str
    out: Path
    settings: FinetuneSettings


@dataclass(frozen=True, slots=True)
class FinetuneResult:
    plan: FinetunePlan
    state: TrainState
    adapter: Path
    adapter_bytes: int
    minutes: float


def default_out(bank: str) -> Path:
    return state_dir() / "adapters" / Path(bank).stem


def prepare_finetune(
    bank_name: str,
    settings: FinetuneSettings,
    *,
    out: Path | None = None,
    spec: TaskSpec | None = None,
    memory: int | None = None,
) -> FinetunePlan:
    """Every check before training; raises InvalidRequestError saying what to change."""
    bank = ExampleBank.open_existing(bank_name)
    try:
        task = bank_task(bank, spec)
        examples = bank.examples()
    finally:
        bank.close()
    if not 0.0 < settings.valid_share < 1.0:
        raise InvalidRequestError("the validation share must be between 0 and 1", param="valid")
    n_valid = max(settings.min_valid, round(len(examples) * settings.valid_share))
    if len(examples) - n_valid < settings.min_valid:
        raise InvalidRequestError(
            f"bank {bank_name!r} has {len(examples)} pairs: too few to hold out a validation "
            f"slice ({n_valid} held out, at least {settings.min_valid} left to train on); "
            f"label at least {n_valid + settings.min_valid} inputs",
            param="bank",
        )
    base = resolve_base(settings.base)
    random.Random(settings.train.seed).shuffle(examples)
    tokenize = _tokenizer(base.path)
    pairs = [tokenize(training_pair(task, e)) for e in examples]
    fitting = [p for p in pairs if len(p[0]) + len(p[1]) <= settings.max_tokens]
    valid, train = fitting[:n_valid], fitting[n_valid:]
    if len(train) < settings.min_valid:
        raise InvalidRequestError(
            f"only {len(fitting)} of {len(pairs)} pairs fit in {settings.max_tokens} tokens; "
            "raise --max-tokens",
            param="max_tokens",
        )
    batch = settings.train.batch_size
    needed = training_bytes(
        base, batch, max(len(p) + len(a) for p, a in train), max(len(a) for _, a in train)
    )
    check_memory(needed, available_bytes() if memory is None else memory, batch)
    return FinetunePlan(
        bank=bank_name,
        task=task,
        base=base,
        train=train,
        valid=valid,
        skipped_long=len(pairs) - len(fitting),
        needed_bytes=needed,
        device=_device(),
        out=out or default_out(bank_name),
        settings=settings,
    )


def run_finetune(
    plan: FinetunePlan,
    on_step: Callable[[TrainState], None] | None = None,
    model: Any = None,
) -> FinetuneResult:
    """Train and convert. `model`: an already loaded base (tests share one load)."""
    started = time.monotonic()
    plan.out.mkdir(parents=True, exist_ok=True)
    if model is None:
        model = load_for_training(plan.base, plan.device)
    state = train_lora(model, plan.train, plan.valid, plan.out, plan.settings.train, on_step)
    adapter = convert_adapter(
        plan.out / "best", plan.base, plan.out / f"{Path(plan.bank).stem}-lora.gguf"
    )
    minutes = (time.monotonic() - started) / 60
    return FinetuneResult(plan, state, adapter, adapter.stat().st_size, minutes)


def config_lines(result: FinetuneResult) -> str:
    """The smallfirst.yaml entry that serves the adapter on its base."""
    plan = result.plan
    configured = {m.name: m for m in load_config().models}.get(plan.base.name)
    tier = configured.tier if configured is not None else "small"
    lines = [
        "models:",
        f"  - name: {Path(plan.base.name).name.removesuffix('.gguf')}-{Path(plan.bank).stem}",
        "    backend: llamacpp",
        f"    tier: {tier}",
    ]
    if configured is None or configured.path is not None:
        lines.append(f"    path: {plan.base.path}")
    lines.append(f"    adapter: {result.adapter.resolve()}")
    return "\n".join(lines)


def _tokenizer(gguf_path: Path) -> Callable[[Pair], TokenPair]:
    """llama.cpp's own tokenizer: the token ids the served model sees."""
    vocab = gguf_vocab(gguf_path)
    eos = vocab.token_eos()

    def tokenize(pair: Pair) -> TokenPair:
        prompt = vocab.tokenize(pair.prompt.encode("utf-8"), add_bos=True, special=True)
        answer = vocab.tokenize(pair.answer.encode("utf-8"), add_bos=False, special=False)
        return list(prompt), [*answer, eos]

    return tokenize


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
