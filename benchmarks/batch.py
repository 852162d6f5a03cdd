"""Batch throughput for a classification task on the embedded model, with and without a tier-0
student, and the engine's overhead beside calling the model in a plain loop. Same run.

    python benchmarks/batch.py [--n 60] [--bank 700] [--concurrency 4]

Data: snips intents (7 labels) from ../shared/data/tasks; the student is trained on `--bank`
train-split examples with their gold labels standing in for a teacher's; items come from the
validate split. Rows:
  plain loop        `await task.run(text)` one after another on the embedded Gemma
  batch engine      `smallfirst batch --task` machinery (journal, rejects, progress) on Gemma
  batch + student   the same with `--model cascade-tiny-first`: the student answers when sure,
                    Gemma gets the rest
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smallfirst.batch import BatchOptions, run_batch
from smallfirst.batch.processors import TaskProcessor
from smallfirst.config import parse_config
from smallfirst.distill.student import train_student
from smallfirst.embeddings import get_embedder
from smallfirst.models.registry import Registry
from smallfirst.tasks import Task, parse_spec
from tasks_data import snips_intent

CONFIG = """
default_model: gemma
models:
  - {{name: student, backend: student, tier: tiny, options: {{path: "{student}"}}}}
  - {{name: gemma, backend: llamacpp, tier: small, context: 2048}}
cascades:
  tiny-first:
    rungs: [student, gemma]
"""


def accuracy(rows: list[dict], gold: dict[str, str]) -> float:
    return sum(r.get("label") == gold[r["id"]] for r in rows) / max(len(rows), 1)


async def plain_loop(
    task: Task, registry: Registry, items: list[tuple[str, str]]
) -> tuple[float, float]:
    started = time.perf_counter()
    right = 0
    for text, label in items:
        result = await task.run(text, model="gemma", registry=registry)
        right += result.label == label
    return time.perf_counter() - started, right / len(items)


async def engine(
    task: Task,
    registry: Registry,
    model: str,
    source: Path,
    out: Path,
    concurrency: int,
    gold: dict[str, str],
) -> tuple[float, float, int]:
    started = time.perf_counter()
    summary = await run_batch(
        TaskProcessor(registry, task, model),
        BatchOptions(source, out, concurrency=concurrency, restart=True),
    )
    elapsed = time.perf_counter() - started
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kept = sum(r["model"] == "student" for r in rows)
    assert summary.done == len(gold), summary
    return elapsed, accuracy(rows, gold), kept


async def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--bank", type=int, default=700)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    data = snips_intent(args.n, args.bank, args.seed)
    work = Path(tempfile.mkdtemp(prefix="sf-batch-bench-"))
    vectors = get_embedder("minilm").encode([e["input"] for e in data.bank])
    student = train_student(vectors, [e["output"] for e in data.bank], target_accuracy=0.97)
    student.save(work / "student.joblib")
    registry = Registry(parse_config(CONFIG.format(student=work / "student.joblib")))
    task = Task(
        parse_spec({**data.spec, "examples": data.bank[:40], "few_shot": {"mode": "fixed", "k": 4}})
    )
    source = work / "items.jsonl"
    source.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, (t, _) in enumerate(data.items))
    )
    gold = {str(i): label for i, (_, label) in enumerate(data.items)}

    await task.run(data.items[0][0], model="gemma", registry=registry)  # load weights first
    loop_s, loop_acc = await plain_loop(task, registry, data.items)
    engine_s, engine_acc, _ = await engine(
        task, registry, "gemma", source, work / "a.jsonl", args.concurrency, gold
    )
    tiny_s, tiny_acc, kept = await engine(
        task, registry, "cascade-tiny-first", source, work / "b.jsonl", args.concurrency, gold
    )
    await registry.aclose()

    n = len(data.items)
    print(
        f"batch throughput: {n} snips items, classify task, embedded Gemma 3 270M, "
        f"concurrency {args.concurrency}; student trained on {args.bank} gold-labelled examples"
    )
    print(f"{'run':<34}{'items/s':>9}{'accuracy':>10}{'kept by student':>17}")
    print(f"{'plain loop (task.run)':<34}{n / loop_s:>9.2f}{loop_acc:>10.3f}{'-':>17}")
    print(f"{'batch engine, Gemma':<34}{n / engine_s:>9.2f}{engine_acc:>10.3f}{'-':>17}")
    print(
        f"{'batch engine, student -> Gemma':<34}{n / tiny_s:>9.2f}{tiny_acc:>10.3f}"
        f"{kept / n:>17.1%}"
    )
    print(f"engine overhead vs plain loop: {engine_s / loop_s - 1:+.1%} wall time")
    return {
        "loop_acc": loop_acc,
        "engine_acc": engine_acc,
        "tiny_acc": tiny_acc,
        "kept": kept / n,
        "overhead": engine_s / loop_s - 1,
    }


if __name__ == "__main__":
    asyncio.run(main())
