"""Fine-tuned embedded model vs kNN few-shot on the same base vs the tier-0 student.

For each set and pair budget it fills a bank with train-split pairs (gold labels stand in for
the teacher, as in benchmarks/distill.py), runs `distill finetune`'s own code path
(`prepare_finetune` / `run_finetune`: LoRA on the fp32 base from the packaged GGUF, converted
to a GGUF LoRA), and scores on the dataset's held-out split through the real `Task` path:

- base kNN few-shot: the packaged Gemma, the bank's k nearest pairs in the prompt;
- fine-tuned: the same Gemma with the adapter (`adapter:` on the model), zero-shot;
- tier-0 student (classification only): `train_from_bank` on the same bank.

Banking77 reports accuracy, SNIPS GetWeather slots field micro F1, each with a 95% interval
(Wilson / bootstrap over items). Also: training minutes, adapter size, and decode tokens/s of
the model with and without the adapter.

    nice -n 10 .venv/bin/python benchmarks/finetune.py --sets banking77 --pairs 250 --n 200
    nice -n 10 .venv/bin/python benchmarks/finetune.py --sets slots --pairs 250 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.config import Config, ModelConfig
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.finetune import FinetuneSettings, prepare_finetune, run_finetune
from smallfirst.distill.lora_train import TrainSettings
from smallfirst.distill.prompts import task_summary
from smallfirst.distill.student import train_from_bank
from smallfirst.evaluate.metrics import MicroF1
from smallfirst.evaluate.stats import bootstrap, wilson
from smallfirst.models.llamacpp import default_model_path, no_weight_repacking
from smallfirst.models.registry import Registry
from smallfirst.tasks import Task, TaskOutputError
from smallfirst.tasks.spec import FewShot, TaskSpec, parse_spec
from tasks_data import SETS, TaskSet
from tasks_quality import field_counts

METRIC = {"banking77": "accuracy", "slots": "field F1"}


@dataclass
class Score:
    system: str
    n: int
    value: float
    low: float
    high: float
    seconds_per_item: float = 0.0


@dataclass
class Run:
    set: str
    pairs: int
    train_minutes: float = 0.0
    steps: int = 0
    stopped: str = ""
    adapter_mib: float = 0.0
    tokens_per_s_base: float = 0.0
    tokens_per_s_adapter: float = 0.0
    scores: list[Score] = field(default_factory=list)


def fill_bank(task_set: TaskSet, path: Path) -> ExampleBank:
    """Train-split pairs as the teacher would have stored them (extract outputs as JSON)."""
    spec = parse_spec(task_set.spec)
    bank = ExampleBank(path)
    bank.set_meta(task=task_summary(spec), embedder="minilm")
    extract = spec.kind == "extract"
    rows = [
        (
            e["input"],
            json.dumps(e["output"], ensure_ascii=False, sort_keys=True) if extract else e["output"],
            None if extract else e["output"],
        )
        for e in task_set.bank
    ]
    bank.add_many(rows, teacher="gold")
    return bank


def scoring_tasks(spec: TaskSpec, task_set: TaskSet, k: int) -> tuple[Task, Task]:
    """The base model's task with `k` nearest examples from the bank, and the fine-tuned
    model's with none (`model_copy` does not validate, so the parts are built typed)."""
    knn = spec.model_copy(update={"examples": task_set.bank, "few_shot": FewShot(mode="knn", k=k)})
    zero = spec.model_copy(update={"few_shot": FewShot(mode="none", k=0)})
    return Task(knn), Task(zero)


async def score_task(name: str, task: Task, task_set: TaskSet, registry: Registry) -> Score:
    """Accuracy (Wilson interval) or field micro F1 (bootstrap interval) over the items."""
    counts: list[tuple[int, int, int]] = []
    started = time.perf_counter()
    for i, (text, gold) in enumerate(task_set.items, start=1):
        if i % 25 == 0:
            print(f"  {name}: {i}/{len(task_set.items)}", file=sys.stderr)
        try:
            result = await task.run(text, registry=registry)
        except TaskOutputError:
            counts.append((0, 0, len(gold)) if isinstance(gold, dict) else (0, 1, 1))
            continue
        if isinstance(gold, dict):
            counts.append(field_counts(result.data, gold))  # type: ignore[attr-defined]
        else:
            hit = int(result.label == gold)  # type: ignore[attr-defined]
            counts.append((hit, 1, 1))
    seconds = (time.perf_counter() - started) / max(1, len(counts))
    return interval(name, counts, isinstance(task_set.items[0][1], dict), seconds)


def interval(name: str, counts: list[tuple[int, int, int]], f1: bool, seconds: float) -> Score:
    n = len(counts)
    if not f1:
        hits = sum(c[0] for c in counts)
        low, high = wilson(hits, n)
        return Score(name, n, hits / max(1, n), low, high, seconds)
    tp_fp_fn = np.asarray([(tp, pred - tp, gold - tp) for tp, pred, gold in counts], dtype=float)
    estimate = bootstrap(MicroF1("field F1", tp_fp_fn), n)
    return Score(name, n, estimate.value, estimate.low, estimate.high, seconds)


def tokens_per_second(adapter: str | None, tokens: int = 64) -> float:
    """Greedy decode speed of the packaged Gemma, with or without the adapter."""
    from llama_cpp import Llama

    with no_weight_repacking():
        llama = Llama(
            model_path=str(default_model_path()), lora_path=adapter, n_ctx=512, verbose=False
        )
    try:
        llama("Write about the sea.", max_tokens=8, temperature=0.0)  # warm-up
        started = time.perf_counter()
        out = llama("Write a long story about the sea.", max_tokens=tokens, temperature=0.0)
        elapsed = time.perf_counter() - started
        return out["usage"]["completion_tokens"] / elapsed  # type: ignore[index]
    finally:
        llama.close()


def student_score(bank: ExampleBank, task_set: TaskSet) -> Score:
    """The tier-0 classifier's accuracy on every item (it answers all; no deferral here)."""
    student = train_from_bank(bank, target_accuracy=0.97)
    texts = [text for text, _ in task_set.items]
    started = time.perf_counter()
    probs = student.scores(bank.embedder.encode(texts))
    seconds = (time.perf_counter() - started) / max(1, len(texts))
    predicted = [student.labels[i] for i in probs.argmax(axis=1)]
    counts = [(int(p == g), 1, 1) for p, (_, g) in zip(predicted, task_set.items, strict=True)]
    return interval("tier-0 student", counts, False, seconds)


async def one_run(name: str, pairs: int, args: argparse.Namespace, folder: Path) -> Run:
    task_set = SETS[name](args.n, pairs, args.seed)
    run = Run(task_set.name, len(task_set.bank))
    bank_file = folder / f"{name}-{pairs}.sqlite"
    bank = fill_bank(task_set, bank_file)
    train = TrainSettings(
        rank=args.rank,
        alpha=2.0 * args.rank,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        epochs=args.epochs,
        max_minutes=args.max_minutes,
    )
    spec = parse_spec(task_set.spec)
    plan = prepare_finetune(
        str(bank_file),
        FinetuneSettings(train=train),
        out=folder / f"adapter-{name}-{pairs}",
        spec=spec,
    )
    print(f"{name} {pairs}: {len(plan.train)} train, {len(plan.valid)} held out", file=sys.stderr)

    def progress(state: Any) -> None:
        if state.step % 10 == 0 or state.stopped:
            print(
                f"  step {state.step}/{state.total_steps} loss {state.loss:.3f} "
                f"held-out {state.val_loss:.3f} {state.elapsed_s / 60:.1f} min",
                file=sys.stderr,
            )

    result = run_finetune(plan, progress)
    run.train_minutes, run.steps, run.stopped = (
        result.minutes,
        result.state.step,
        result.state.stopped,
    )
    run.adapter_mib = result.adapter_bytes / 2**20
    adapter = str(result.adapter)
    run.tokens_per_s_base = tokens_per_second(None)
    run.tokens_per_s_adapter = tokens_per_second(adapter)

    base = Registry(Config())
    tuned = Registry(
        Config(models=[ModelConfig(name="tuned", backend="llamacpp", adapter=adapter)])
    )
    try:
        knn_task, zero = scoring_tasks(spec, task_set, args.k)
        run.scores.append(await score_task(f"base kNN {args.k}-shot", knn_task, task_set, base))
        run.scores.append(await score_task("fine-tuned, zero-shot", zero, task_set, tuned))
    finally:
        await base.aclose()
        await tuned.aclose()
    if spec.kind == "classify":
        run.scores.append(student_score(bank, task_set))
    bank.close()
    return run


def print_run(run: Run, metric: str) -> None:
    print(
        f"\n### {run.set}, {run.pairs} pairs: LoRA {run.steps} steps ({run.stopped}), "
        f"{run.train_minutes:.1f} min, adapter {run.adapter_mib:.2f} MiB, decode "
        f"{run.tokens_per_s_base:.0f} tok/s base / {run.tokens_per_s_adapter:.0f} tok/s adapter\n"
    )
    print(f"| system | N | {metric} | 95% interval | s/item |")
    print("|---|---:|---:|---|---:|")
    for s in run.scores:
        print(
            f"| {s.system} | {s.n} | {s.value:.3f} | [{s.low:.3f}, {s.high:.3f}] | "
            f"{s.seconds_per_item:.2f} |"
        )


async def main(argv: list[str] | None = None) -> list[Run]:
    args = parse_args(argv)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SMALLFIRST_HOME", str(Path(tmp) / "state"))
        for name in args.sets:
            for pairs in args.pairs:
                run = await one_run(name, pairs, args, Path(tmp))
                runs.append(run)
                print_run(run, METRIC[name])
                if args.out:
                    Path(args.out).write_text(
                        json.dumps(
                            [r.__dict__ | {"scores": [s.__dict__ for s in r.scores]} for r in runs],
                            indent=2,
                        )
                    )
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=sorted(METRIC), default=["slots", "banking77"])
    parser.add_argument("--pairs", nargs="+", type=int, default=[250, 1000])
    parser.add_argument("--n", type=int, default=200, help="Held-out items scored per system.")
    parser.add_argument("--k", type=int, default=4, help="Examples in the kNN few-shot prompt.")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="Also write the figures as JSON here.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main())
