"""The LoRA training loop: peft on a transformers model, with checkpoints and early stopping.

A plain loop rather than `transformers.Trainer`: it needs no extra packages, computes logits
over the answer positions only (Gemma's vocabulary is 262k, so full-sequence logits would dwarf
the model), and runs the instruction all of a batch's prompts share once (a 77-label prompt is
~630 shared tokens before a ~20-token input). Positions start at 0 as when served.

`out/checkpoint/` holds the adapter, optimizer and counters after every evaluation: a rerun
with the same data and settings resumes there. `out/best/` holds the adapter with the lowest
loss on the held-out pairs; training stops after `patience` evaluations without a new best.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.errors import InvalidRequestError

TokenPair = tuple[list[int], list[int]]
"""(prompt token ids, answer token ids ending with end-of-sequence)."""


@dataclass(frozen=True, slots=True)
class TrainSettings:
    rank: int = 8
    alpha: float = 16.0
    learning_rate: float = 5e-4
    batch_size: int = 8
    epochs: float = 3.0
    max_minutes: float | None = None
    patience: int = 3
    """Evaluations without a lower held-out loss before stopping."""
    eval_every: int | None = None
    """Steps between held-out evaluations (and checkpoints); default: 4 per epoch."""
    targets: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 0
    max_steps: int | None = None


@dataclass(slots=True)
class TrainState:
    """What the progress bar shows and what a checkpoint restores."""

    step: int = 0
    total_steps: int = 0
    loss: float = math.nan
    val_loss: float = math.nan
    best_val_loss: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    elapsed_s: float = 0.0
    resumed_from: int = 0
    stopped: str = ""
    history: list[dict[str, float]] = field(default_factory=list)


def fingerprint(train: list[TokenPair], valid: list[TokenPair], settings: TrainSettings) -> str:
    """Identifies a run; a checkpoint from another run is never resumed into this one.
    `max_minutes` and `max_steps` are left out: a resumed run may get more time."""
    knobs = {k: v for k, v in asdict(settings).items() if k not in ("max_minutes", "max_steps")}
    digest = hashlib.sha256(json.dumps([train, valid, knobs], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def train_lora(
    model: Any,
    train: list[TokenPair],
    valid: list[TokenPair],
    out: Path,
    settings: TrainSettings,
    on_step: Callable[[TrainState], None] | None = None,
) -> TrainState:
    """Train an adapter on `model` (left unchanged afterwards) into `out/best/`."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(train) / settings.batch_size)
    total = max(1, round(settings.epochs * steps_per_epoch))
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    eval_every = settings.eval_every or max(1, steps_per_epoch // 4)
    run_id = fingerprint(train, valid, settings)
    checkpoint = out / "checkpoint"
    lora = LoraConfig(
        r=settings.rank,
        # peft annotates lora_alpha as int; it only divides it by r, and a float alpha is valid
        lora_alpha=settings.alpha,  # type: ignore[arg-type]
        lora_dropout=0.0,
        target_modules=list(settings.targets),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(settings.seed)
    peft_model = get_peft_model(model, lora)
    try:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
        state = TrainState(total_steps=total)
        if (checkpoint / "trainer.pt").is_file():
            saved = torch.load(checkpoint / "trainer.pt", map_location=device, weights_only=False)
            if saved["run"] != run_id:
                raise InvalidRequestError(
                    f"{checkpoint} is from another run (different pairs or settings); "
                    "pass another --out, or delete it to start over",
                    param="out",
                )
            set_peft_model_state_dict(peft_model, load_peft_weights(str(checkpoint), str(device)))
            optimizer.load_state_dict(saved["optimizer"])
            state = TrainState(**{**saved["state"], "total_steps": total, "stopped": ""})
            state.resumed_from = state.step
        started = time.monotonic() - state.elapsed_s
        this_run = time.monotonic()  # --max-minutes counts this run: a rerun gets its own time
        peft_model.train()
        while not state.stopped:
            if state.step >= total:
                state.stopped = "done"
                break
            batch = _batch_at(train, state.step, steps_per_epoch, settings)
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate * _schedule(state.step, total)
            loss = _loss(peft_model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            state.loss = float(loss.detach())
            state.elapsed_s = time.monotonic() - started
            minutes_up = (
                settings.max_minutes is not None
                and time.monotonic() - this_run >= settings.max_minutes * 60
            )
            if state.step % eval_every == 0 or state.step >= total or minutes_up:
                _evaluate(peft_model, valid, device, settings, state, out)
                if state.bad_evals >= settings.patience:
                    state.stopped = "early stop"
                elif minutes_up:
                    state.stopped = "time limit"
                _save_checkpoint(peft_model, optimizer, state, run_id, checkpoint)
            if on_step is not None:
                on_step(state)
        return state
    finally:
        peft_model.unload()


def _schedule(step: int, total: int) -> float:
    """Linear warm-up over the first 5% of steps, then linear decay to a tenth."""
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    return 1.0 - 0.9 * (step - warm) / max(1, total - warm)


def _batch_at(
    pairs: list[TokenPair], step: int, steps_per_epoch: int, settings: TrainSettings
) -> list[TokenPair]:
    """The same order for the same step in every run, so a resumed run sees what it would have."""
    epoch, index = divmod(step, steps_per_epoch)
    order = list(range(len(pairs)))
    random.Random(settings.seed * 1_000_003 + epoch).shuffle(order)
    start = index * settings.batch_size
    return [pairs[i] for i in order[start : start + settings.batch_size]]


SHARED_PREFIX_MIN = 16
"""Tokens all prompts of a batch must share before the prefix is computed once for the batch."""


def _loss(model: Any, batch: list[TokenPair], device: Any) -> Any:
    """Mean cross-entropy over the answer tokens of a batch.

    Task prompts share their instruction (every label, the schema), often most of the tokens:
    the shared prefix then runs once and its key/value cache is repeated for every row, with
    gradients flowing back through it, so the loss is the same as the padded batch's."""
    shared = _shared_prefix([prompt for prompt, _ in batch])
    if shared >= SHARED_PREFIX_MIN:
        return _loss_after_prefix(model, batch, shared, device)
    return _loss_padded(model, batch, device)


def _shared_prefix(prompts: list[list[int]]) -> int:
    """Length of the common token prefix, leaving every prompt at least one token of its own."""
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for i in range(limit):
        if any(p[i] != first[i] for p in prompts[1:]):
            return i
    return max(0, limit)


def _loss_padded(model: Any, batch: list[TokenPair], device: Any) -> Any:
    """Left-padded rows: every answer ends its row, logits only over the answer positions."""
    import torch

    rows = [prompt + answer for prompt, answer in batch]
    width = max(len(r) for r in rows)
    answer_width = max(len(answer) for _, answer in batch)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.zeros((len(rows), answer_width), dtype=torch.bool)
    for i, ((_, answer), row) in enumerate(zip(batch, rows, strict=True)):
        ids[i, width - len(row) :] = torch.tensor(row)
        mask[i, width - len(row) :] = 1
        target[i, answer_width - len(answer) :] = True
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        logits_to_keep=answer_width + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1].float()
    labels = ids[:, width - answer_width :].to(device)
    chosen = target.to(device)
    return torch.nn.functional.cross_entropy(logits[chosen], labels[chosen])


def _loss_after_prefix(model: Any, batch: list[TokenPair], shared: int, device: Any) -> Any:
    """The shared prefix once, then right-padded suffixes attending to its repeated cache."""
    import torch

    prefix = torch.tensor([batch[0][0][:shared]], device=device)
    cache = model(input_ids=prefix, use_cache=True).past_key_values
    cache.batch_repeat_interleave(len(batch))
    rows = [prompt[shared:] + answer for prompt, answer in batch]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    rows_at: list[int] = []
    predicted_at: list[int] = []
    labels: list[int] = []
    for i, ((_, answer), row) in enumerate(zip(batch, rows, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, shared : shared + len(row)] = 1
        start = len(row) - len(answer)  # the first answer token, predicted one position before
        rows_at += [i] * len(answer)
        predicted_at += range(start - 1, len(row) - 1)
        labels += answer
    keep = width - min(predicted_at)
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=(shared + torch.arange(width)).expand(len(rows), width).to(device),
        past_key_values=cache,
        logits_to_keep=keep,
        use_cache=True,
    )
    columns = (torch.tensor(predicted_at) - (width - keep)).to(device)
    logits = out.logits[torch.tensor(rows_at, device=device), columns].float()
    return torch.nn.functional.cross_entropy(logits, torch.tensor(labels, device=device))


def _evaluate(
    model: Any,
    valid: list[TokenPair],
    device: Any,
    settings: TrainSettings,
    state: TrainState,
    out: Path,
) -> None:
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(valid), settings.batch_size):
            batch = valid[start : start + settings.batch_size]
            n = sum(len(answer) for _, answer in batch)
            total += float(_loss(model, batch, device)) * n
            tokens += n
    model.train()
    state.val_loss = total / max(1, tokens)
    state.history.append({"step": state.step, "loss": state.loss, "val_loss": state.val_loss})
    if state.val_loss < state.best_val_loss:
        state.best_val_loss, state.best_step, state.bad_evals = state.val_loss, state.step, 0
        model.save_pretrained(str(out / "best"), save_embedding_layers=False)
    else:
        state.bad_evals += 1


def _save_checkpoint(
    model: Any, optimizer: Any, state: TrainState, run_id: str, checkpoint: Path
) -> None:
    import torch

    model.save_pretrained(str(checkpoint), save_embedding_layers=False)
    saved = {"run": run_id, "optimizer": optimizer.state_dict(), "state": asdict(state)}
    torch.save(saved, checkpoint / "trainer.tmp")
    (checkpoint / "trainer.tmp").replace(checkpoint / "trainer.pt")
