"""Task quality of the embedded Gemma 3 270M: zero-shot vs fixed few-shot vs kNN few-shot.

For each set and prompt mode it runs the real `Task` path (prompt, grammar, validation) and
prints accuracy (classification) or field-level micro F1 (extraction), how often the output
was valid on the first try, and seconds per item. Classification also compares the two
methods: `generate` (grammar-constrained label) and `score` (likelihood of every label).

    nice python benchmarks/tasks_quality.py --sets sentiment snips banking77 slots --n 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smallfirst.models.registry import Registry
from smallfirst.tasks import Task, TaskOutputError
from tasks_data import SETS, TaskSet

MODES = ("none", "fixed", "knn")


@dataclass
class Row:
    set: str
    mode: str
    method: str
    n: int = 0
    score: float = 0.0
    """Accuracy (classification) or field micro F1 (extraction)."""
    valid_first: int = 0
    valid_final: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def normalize(value: Any) -> str:
    return " ".join(str(value).casefold().split()).strip(" .,!?'\"")


def field_counts(predicted: dict[str, Any], gold: dict[str, str]) -> tuple[int, int, int]:
    """(true positives, predicted fields, gold fields); a field counts when its value matches
    the gold text after case and whitespace folding."""
    pred = {k: normalize(v) for k, v in predicted.items() if v not in (None, "")}
    want = {k: normalize(v) for k, v in gold.items()}
    hits = sum(1 for k, v in pred.items() if want.get(k) == v)
    return hits, len(pred), len(want)


async def evaluate(task_set: TaskSet, mode: str, method: str, k: int, registry: Registry) -> Row:
    spec = dict(task_set.spec, examples=task_set.bank, few_shot={"mode": mode, "k": k})
    if spec["kind"] == "classify":
        spec["method"] = method
    task = Task(**spec)
    row = Row(task_set.name, mode if mode != "none" else "zero-shot", method)
    hits = tp = n_pred = n_gold = 0
    started = time.perf_counter()
    for text, gold in task_set.items:
        row.n += 1
        if row.n % 10 == 0:
            print(
                f"  {task_set.name} {mode} {method}: {row.n}/{len(task_set.items)}", file=sys.stderr
            )
        try:
            result = await task.run(text, registry=registry)
        except TaskOutputError:
            n_gold += len(gold) if isinstance(gold, dict) else 0
            continue
        row.valid_final += 1
        row.valid_first += result.attempts == 1
        if isinstance(gold, dict):
            counts = field_counts(result.data, gold)
            tp, n_pred, n_gold = tp + counts[0], n_pred + counts[1], n_gold + counts[2]
        else:
            hits += result.label == gold
    row.seconds = (time.perf_counter() - started) / max(row.n, 1)
    if task_set.spec["kind"] == "extract":
        precision, recall = tp / max(n_pred, 1), tp / max(n_gold, 1)
        row.score = 2 * precision * recall / max(precision + recall, 1e-9)
        row.extra = {"precision": round(precision, 4), "recall": round(recall, 4)}
    else:
        row.score = hits / max(row.n, 1)
    return row


def bound_strings(task_set: TaskSet, limit: int) -> TaskSet:
    """The same extraction set with `maxLength` on every string field: the grammar then
    cannot let a base model run on inside one string until max_tokens cuts the JSON off.
    Bank examples with a longer value are left out (they would break the schema)."""
    schema = task_set.spec["schema"]
    props = {
        key: {**prop, "anyOf": [{"type": "string", "maxLength": limit}, {"type": "null"}]}
        for key, prop in schema["properties"].items()
    }
    spec = dict(task_set.spec, schema={**schema, "properties": props})
    name = f"{task_set.name} (maxLength {limit})"
    fits = [e for e in task_set.bank if all(len(str(v)) <= limit for v in e["output"].values())]
    return TaskSet(name, spec, fits, task_set.items)


def print_table(rows: list[Row]) -> None:
    print("| set | prompt | method | N | accuracy / F1 | valid 1st try | valid final | s/item |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        metric = f"{r.score:.3f}" + (
            f" (P {r.extra['precision']:.3f} R {r.extra['recall']:.3f})" if r.extra else ""
        )
        print(
            f"| {r.set} | {r.mode} | {r.method} | {r.n} | {metric} | "
            f"{r.valid_first / max(r.n, 1):.1%} | {r.valid_final / max(r.n, 1):.1%} | "
            f"{r.seconds:.2f} |"
        )


async def main(args: argparse.Namespace) -> list[Row]:
    registry = Registry()
    rows: list[Row] = []
    try:
        for name in args.sets:
            n = args.n_extract if name == "slots" else args.n
            task_set = SETS[name](n, args.bank, args.seed)
            if name == "slots" and args.max_field_chars:
                task_set = bound_strings(task_set, args.max_field_chars)
            methods = ["generate"] if name == "slots" else args.methods
            for method in methods:
                for mode in args.modes:
                    row = await evaluate(task_set, mode, method, args.k, registry)
                    rows.append(row)
                    print_table([row])
                    if args.out:
                        Path(args.out).write_text(json.dumps([r.__dict__ for r in rows]))
    finally:
        await registry.aclose()
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument(
        "--methods", nargs="+", default=["generate", "score"], choices=["generate", "score"]
    )
    parser.add_argument("--n", type=int, default=150, help="items per classification setting")
    parser.add_argument("--n-extract", type=int, default=100, help="items per extraction setting")
    parser.add_argument("--bank", type=int, default=2000, help="few-shot bank size (train split)")
    parser.add_argument("--k", type=int, default=4, help="examples per prompt (fixed and kNN)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--max-field-chars", type=int, default=0, help="slots: bound string fields (0: unbounded)"
    )
    parser.add_argument("--out", help="also write the rows as JSON here (after every setting)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    all_rows = asyncio.run(main(arguments))
    print()
    print_table(all_rows)
