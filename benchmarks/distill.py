"""Distillation benchmark: how many teacher labels make a tiny student good, and how much of
the traffic it can answer alone at >= 97% accuracy.

Gold labels stand in for the teacher (there is no large model here): part 1 runs the real
labelling loop (`TeacherRun`) against a replay teacher that answers banking77 gold intents,
part 2 samples k gold labels per class straight into a bank. Students are trained through
`train_from_bank` exactly as `smallfirst distill student` does; the kNN-vote baseline uses the
same bank vectors. Test sets are the datasets' own held-out splits (banking77 test.csv,
SNIPS validate_*.json), never seen by the bank.

    nice .venv/bin/python benchmarks/distill.py            # ~5 min on 2 shared cores, cached
    nice .venv/bin/python benchmarks/distill.py --quick    # one seed, fewer budgets

MiniLM vectors are cached in the state dir (.smallfirst/embeddings.sqlite), so only the first
run pays for embedding ~16k texts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.embed_cache import EmbeddingCache
from smallfirst.distill.student import TinyClassifier, train_from_bank
from smallfirst.distill.teacher import LabelSettings, TeacherRun
from smallfirst.models.registry import Registry

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
TARGET = 0.97


@dataclass
class Dataset:
    name: str
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]

    @property
    def labels(self) -> list[str]:
        return sorted({label for _, label in self.train})


def banking77() -> Dataset:
    def read(name: str) -> list[tuple[str, str]]:
        with (DATA / "banking77" / name).open(newline="", encoding="utf-8") as handle:
            return [(row["text"], row["category"]) for row in csv.DictReader(handle)]

    return Dataset("banking77", read("train.csv"), read("test.csv"))


def snips() -> Dataset:
    def read(split: str) -> list[tuple[str, str]]:
        rows = []
        for path in sorted((DATA / "snips").glob(f"{split}_*.json")):
            intent = path.stem.removeprefix(f"{split}_")
            for item in json.loads(path.read_text())[intent]:
                rows.append(("".join(piece["text"] for piece in item["data"]), intent))
        return rows

    return Dataset("snips", read("train"), read("validate"))


def per_class(rows: list[tuple[str, str]], k: int | None, seed: int) -> list[tuple[str, str]]:
    """k random rows of every label (all rows when k is None)."""
    if k is None:
        return rows
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, str]] = []
    for label in sorted({lab for _, lab in rows}):
        pool = [row for row in rows if row[1] == label]
        chosen += [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    return chosen


def knn_vote(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, k: int) -> list[str]:
    """Similarity-weighted vote of the k nearest bank examples (the no-training baseline)."""
    scores = test_x @ train_x.T
    k = min(k, len(train_y))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    out = []
    for row, idx in enumerate(top):
        votes: dict[str, float] = {}
        for i in idx:
            votes[train_y[i]] = votes.get(train_y[i], 0.0) + float(scores[row, i])
        out.append(max(votes, key=votes.__getitem__))
    return out


def coverage_at(confidence: np.ndarray, correct: np.ndarray, target: float) -> float:
    """Largest share of the test set answerable (most confident first) at >= target accuracy."""
    order = np.argsort(-confidence, kind="stable")
    accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(accuracy >= target)[0]
    return float((ok[-1] + 1) / len(order)) if len(ok) else 0.0


@dataclass
class Outcome:
    n_labels: int
    student_acc: float
    knn_acc: float
    answered: float
    answered_acc: float
    oracle_cov: float
    fit_s: float


def evaluate(student: TinyClassifier, bank: ExampleBank, test_x: np.ndarray, gold: list[str]):
    probs = student.scores(test_x)
    best = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    correct = np.array([student.labels[i] == g for i, g in zip(best, gold, strict=True)])
    answered = confidence >= student.threshold
    matrix, examples = bank.vectors()
    knn = knn_vote(matrix, [e.label or "" for e in examples], test_x, k=5)
    return (
        correct,
        confidence,
        answered,
        float(np.mean([p == g for p, g in zip(knn, gold, strict=True)])),
    )


def one_budget(ds: Dataset, k: int | None, seed: int, cache, test_x, folder: Path) -> Outcome:
    rows = per_class(ds.train, k, seed)
    bank = ExampleBank(folder / f"{ds.name}-{k}-{seed}.sqlite", embedder=cache)
    bank.add_many([(text, label, label) for text, label in rows], teacher="gold")
    started = time.perf_counter()
    student = train_from_bank(bank, target_accuracy=TARGET, seed=seed)
    fit_s = time.perf_counter() - started
    gold = [label for _, label in ds.test]
    correct, confidence, answered, knn_acc = evaluate(student, bank, test_x, gold)
    bank.close()
    return Outcome(
        n_labels=len(rows),
        student_acc=float(correct.mean()),
        knn_acc=knn_acc,
        answered=float(answered.mean()),
        answered_acc=float(correct[answered].mean()) if answered.any() else float("nan"),
        oracle_cov=coverage_at(confidence, correct, TARGET),
        fit_s=fit_s,
    )


def budget_table(ds: Dataset, budgets, seeds: int, cache, folder: Path) -> None:
    test_x = cache.encode([text for text, _ in ds.test])
    print(f"\n### {ds.name}: {len(ds.labels)} labels, pool {len(ds.train)}, test {len(ds.test)}")
    print(
        "| labels/class | teacher labels | student acc | kNN-5 vote acc | answered "
        f"(threshold from held-out folds) | acc of answered | best coverage at >= {TARGET:.0%} "
        "on test | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for k in budgets:
        runs = [
            one_budget(ds, k, s, cache, test_x, folder) for s in range(1 if k is None else seeds)
        ]
        mean = {f: np.nanmean([getattr(r, f) for r in runs]) for f in Outcome.__dataclass_fields__}
        spread = np.std([r.student_acc for r in runs])
        pm = f" ± {spread:.3f}" if len(runs) > 1 else ""
        print(
            f"| {'full' if k is None else k} | {mean['n_labels']:.0f} | "
            f"{mean['student_acc']:.3f}{pm} | {mean['knn_acc']:.3f} | {mean['answered']:.1%} | "
            f"{mean['answered_acc']:.3f} | {mean['oracle_cov']:.1%} | {mean['fit_s']:.1f} |"
        )


async def label_with_replay(n: int, folder: Path, teacher_accuracy: float | None) -> None:
    """Part 1: the real loop. A replay teacher answers banking77 gold intents (optionally
    degraded to `teacher_accuracy`); TeacherRun labels n train inputs; a student learns them."""
    ds = banking77()
    rng = np.random.default_rng(0)
    inputs = [ds.train[i][0] for i in rng.choice(len(ds.train), size=n, replace=False)]
    options = {
        "outcomes": str(DATA / "banking77" / "train.csv"),
        "prompt_column": "text",
        "answer_column": "category",
    }
    if teacher_accuracy is not None:
        options["accuracy"] = teacher_accuracy
    teacher = ModelConfig(
        name="teacher",
        backend="replay",
        tier="large",
        options=options,
        price=Price(input=2.5, output=10.0),
    )
    registry = Registry(Config(models=[teacher]))
    summary = {
        "name": "banking77",
        "kind": "classify",
        "instructions": "",
        "input_name": "Text",
        "labels": ds.labels,
    }
    cache = EmbeddingCache()
    bank = ExampleBank(folder / f"replay-{n}-{teacher_accuracy}.sqlite", embedder=cache)
    started = time.perf_counter()
    run = TeacherRun(
        bank,
        registry.provider("teacher"),
        registry.get("teacher").price,
        summary,
        LabelSettings(max_usd=5.0, concurrency=8),
    )
    progress = await run.run(inputs)
    label_s = time.perf_counter() - started
    student = train_from_bank(bank, target_accuracy=TARGET)
    test_x = cache.encode([t for t, _ in ds.test])
    correct, _, answered, knn_acc = evaluate(student, bank, test_x, [g for _, g in ds.test])
    noisy = "gold" if teacher_accuracy is None else f"{teacher_accuracy:.0%} accurate"
    print(
        f"| {noisy} | {progress.labelled} | {progress.failed} | ${progress.cost_usd:.4f} | "
        f"{label_s:.1f} | {correct.mean():.3f} | {knn_acc:.3f} | {answered.mean():.1%} | "
        f"{correct[answered].mean() if answered.any() else float('nan'):.3f} |"
    )


def coverage_curve(ds: Dataset, cache, folder: Path) -> None:
    """Part 3: one student per target accuracy on all teacher labels; the threshold comes from
    its held-out folds, the coverage/accuracy columns are measured on the test split."""
    test_x = cache.encode([text for text, _ in ds.test])
    gold = [label for _, label in ds.test]
    bank = ExampleBank(folder / f"{ds.name}-curve.sqlite", embedder=cache)
    bank.add_many([(text, label, label) for text, label in ds.train], teacher="gold")
    print(f"\n### {ds.name}: coverage vs target accuracy (all {len(ds.train)} teacher labels)")
    print(
        "| target | threshold | answered on test | accuracy of answered | "
        "held-out answered | deferred to the teacher |"
    )
    print("|---|---|---|---|---|---|")
    for target in (0.90, 0.95, 0.97, 0.99):
        student = train_from_bank(bank, target_accuracy=target)
        correct, _, answered, _ = evaluate(student, bank, test_x, gold)
        print(
            f"| {target:.0%} | {student.threshold:.3f} | {answered.mean():.1%} | "
            f"{correct[answered].mean():.3f} | {student.heldout.coverage:.1%} | "
            f"{1 - answered.mean():.1%} |"
        )
    bank.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, budgets 4/16/full")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 3")
    args = parser.parse_args()
    budgets = [4, 16, None] if args.quick else [1, 4, 8, 16, 64, None]
    seeds = 1 if args.quick else args.seeds
    cache = EmbeddingCache()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "1" in args.parts:
            print(
                "## Part 1: labelling loop, replay teacher (banking77 gold intents), 1,000 inputs"
            )
            print(
                "| teacher | labelled | failed | teacher $ (at $2.5/$10 per Mtok) | label s "
                "| student acc | kNN-5 acc | answered | acc of answered |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for accuracy in (None, 0.9):
                asyncio.run(label_with_replay(1000, folder, accuracy))
        if "2" in args.parts:
            print(f"\n## Part 2: accuracy vs teacher labels (gold), mean of {seeds} seed(s)")
            for ds in (banking77(), snips()):
                budget_table(ds, budgets, seeds, cache, folder)
        if "3" in args.parts:
            print("\n## Part 3: coverage-accuracy curve of the tier-0 student")
            for ds in (banking77(), snips()):
                coverage_curve(ds, cache, folder)


if __name__ == "__main__":
    main()
