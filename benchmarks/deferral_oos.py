"""Out-of-scope deferral: whole intents held out as unseen traffic, target accuracy 0.97.

For each seed, a seeded random draw splits a dataset's intents into in-scope (the student is
trained on their train-split examples), unseen (their test-split examples are the out-of-scope
traffic) and background (a different set: their train-split examples are the `--background`
traffic of method 4, never the test intents). Thresholds are calibrated on the training intents
only (the student's own out-of-fold and held-out-label predictions, plus background for method
4); the table is measured on the test split. Methods:

1. `confidence, point`: the student before this work (confidence threshold, point estimate).
2. `confidence, lower bound`: the same threshold on the 95% lower bound.
3. `+ familiarity`: the default student (confidence + similarity to the training examples).
4. `+ background`: 3 with background traffic learnt as a deferring class and used to calibrate.
5. `+ background of the unseen kind`: 4, but the background is inputs of the unseen intents
   themselves (their train split, never a test input): what `distill label --out-of-scope`
   stores when a user's unlabelled inputs already hold out-of-scope requests like those the
   student will meet, and the teacher answers `none` for them (gold labels stand in for it).

    nice .venv/bin/python benchmarks/deferral_oos.py            # 5 seeds, ~4 min on 2 cores
    nice .venv/bin/python benchmarks/deferral_oos.py --quick    # 1 seed

MiniLM vectors (the student's default embedder) are cached in the state dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smallfirst.distill.novelty import nearest_similarity
from smallfirst.distill.student import TinyClassifier, train_student
from smallfirst.evaluate.stats import Rate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks"
TARGET = 0.97
Rows = list[tuple[str, str]]
Encode = Callable[[list[str]], np.ndarray]


@dataclass
class Dataset:
    name: str
    train: Rows
    test: Rows
    unseen: int
    """How many intents each draw holds out as out-of-scope test traffic."""
    background: int
    """How many other intents give background traffic."""
    per_intent: int
    """Training examples per in-scope intent (a seeded sample of the train split)."""

    @property
    def intents(self) -> list[str]:
        return sorted({label for _, label in self.train})


def banking77() -> Dataset:
    def read(name: str) -> Rows:
        with (DATA / "banking77" / name).open(newline="", encoding="utf-8") as handle:
            return [(row["text"], row["category"]) for row in csv.DictReader(handle)]

    return Dataset("banking77", read("train.csv"), read("test.csv"), 15, 8, 20)


def snips() -> Dataset:
    def read(split: str) -> Rows:
        rows = []
        for path in sorted((DATA / "snips").glob(f"{split}_*.json")):
            intent = path.stem.removeprefix(f"{split}_")
            for item in json.loads(path.read_text())[intent]:
                rows.append(("".join(piece["text"] for piece in item["data"]).strip(), intent))
        return rows

    return Dataset("snips", read("train"), read("validate"), 2, 1, 50)


@dataclass(frozen=True)
class Draw:
    """One seeded split of the intents."""

    seed: int
    in_scope: list[str]
    unseen: list[str]
    background: list[str]


def draw(ds: Dataset, seed: int) -> Draw:
    order = list(np.random.default_rng(seed).permutation(ds.intents))
    unseen = sorted(order[: ds.unseen])
    background = sorted(order[ds.unseen : ds.unseen + ds.background])
    return Draw(seed, sorted(order[ds.unseen + ds.background :]), unseen, background)


def sample(rows: Rows, intents: list[str], k: int | None, seed: int) -> Rows:
    """k seeded rows of each intent (all when k is None)."""
    rng = np.random.default_rng(seed)
    chosen: Rows = []
    for intent in intents:
        pool = [row for row in rows if row[1] == intent]
        picks = range(len(pool)) if k is None else rng.choice(len(pool), min(k, len(pool)), False)
        chosen += [pool[i] for i in sorted(picks)]
    return chosen


@dataclass
class Tally:
    """Counts behind one table row (summed over seeds for the pooled row)."""

    in_scope: int = 0
    answered: int = 0
    right: int = 0
    oos: int = 0
    oos_answered: int = 0
    fit_s: float = 0.0
    draws: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.in_scope += other.in_scope
        self.answered += other.answered
        self.right += other.right
        self.oos += other.oos
        self.oos_answered += other.oos_answered
        self.fit_s += other.fit_s
        self.draws += other.draws


METHODS: dict[str, dict] = {
    "confidence, point": {"level": None, "familiarity": False},
    "confidence, lower bound": {"familiarity": False},
    "+ familiarity": {},
    "+ background": {"background": "other"},
    "+ background of the unseen kind": {"background": "unseen"},
}


def measure(student: TinyClassifier, in_x: np.ndarray, gold: list[str], oos_x: np.ndarray) -> Tally:
    inside = student.predict_vectors(in_x)
    outside = student.predict_vectors(oos_x)
    return Tally(
        in_scope=len(inside),
        answered=sum(p.answered for p in inside),
        right=sum(p.answered and p.label == g for p, g in zip(inside, gold, strict=True)),
        oos=len(outside),
        oos_answered=sum(p.answered for p in outside),
    )


def run_draw(ds: Dataset, split: Draw, encode: Encode, methods: list[str]) -> dict[str, Tally]:
    train = sample(ds.train, split.in_scope, ds.per_intent, split.seed)
    tests = [row for row in ds.test if row[1] in split.in_scope]
    oos = [row for row in ds.test if row[1] in split.unseen]
    test_texts = {text for text, _ in ds.test}
    pool = [row for row in ds.train if row[0] not in test_texts]  # a few SNIPS texts are in both
    backgrounds = {
        "other": sample(pool, split.background, 200 // max(1, ds.background), split.seed),
        "unseen": sample(pool, split.unseen, 200 // max(1, ds.unseen), split.seed),
    }
    train_x = encode([t for t, _ in train])
    bg_x = {kind: encode([t for t, _ in rows]) for kind, rows in backgrounds.items()}
    in_x, oos_x = encode([t for t, _ in tests]), encode([t for t, _ in oos])
    out = {}
    for name in methods:
        options = dict(METHODS[name])
        kind = options.pop("background", None)
        if kind is not None:
            options["background"] = bg_x[kind]
        started = time.perf_counter()
        student = train_student(
            train_x, [y for _, y in train], target_accuracy=TARGET, seed=split.seed, **options
        )
        tally = measure(student, in_x, [y for _, y in tests], oos_x)
        tally.fit_s = time.perf_counter() - started
        tally.draws = [f"seed {split.seed}: {len(split.unseen)}"]
        out[name] = tally
    return out


def auroc_table(ds: Dataset, split: Draw, encode: Encode) -> dict[str, float]:
    """How well each score separates in-scope from unseen-intent test inputs, and (last) how
    well nearest-1 similarity separates what the calibration sees: held-out in-scope inputs
    from stand-ins of held-out labels (diagnostic; nothing is tuned on it)."""
    from scipy.special import logsumexp
    from sklearn.metrics import roc_auc_score

    train = sample(ds.train, split.in_scope, ds.per_intent, split.seed)
    tests = [row for row in ds.test if row[1] in split.in_scope + split.unseen]
    x = encode([t for t, _ in tests])
    is_in = np.array([y in split.in_scope for _, y in tests])
    train_x = encode([t for t, _ in train])
    student = train_student(train_x, [y for _, y in train], familiarity=False, seed=split.seed)
    scores = {
        "max probability": student.scores(x).max(axis=1),
        "energy": logsumexp(student.model.decision_function(x), axis=1),
        "similarity, nearest 1": nearest_similarity(train_x, x, 1),
        "similarity, mean of nearest 5": nearest_similarity(train_x, x, 5),
    }
    out = {name: float(roc_auc_score(is_in, value)) for name, value in scores.items()}
    out["stand-ins (training data), nearest 1"] = _stand_in_auroc(train_x, train, split.seed)
    return out


def _stand_in_auroc(train_x: np.ndarray, train: Rows, seed: int) -> float:
    """Nearest-1 similarity: 5-fold held-out training inputs vs inputs of held-out labels
    (one label group of 5 at a time, as the student makes its stand-ins)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold

    labels = np.array([y for _, y in train])
    inside, outside = np.zeros(len(labels)), np.zeros(len(labels))
    for rest, held in KFold(5, shuffle=True, random_state=seed).split(train_x):
        inside[held] = nearest_similarity(train_x[rest], train_x[held])
    groups = np.array_split(np.random.default_rng(seed).permutation(np.unique(labels)), 5)
    for group in groups:
        held_out = np.isin(labels, group)
        if held_out.any():
            outside[held_out] = nearest_similarity(train_x[~held_out], train_x[held_out])
    truth = np.r_[np.ones(len(labels)), np.zeros(len(labels))]
    return float(roc_auc_score(truth, np.r_[inside, outside]))


def rate(k: int, n: int) -> str:
    r = Rate(k, n)
    low, high = r.interval
    return f"{r.value:.1%} [{low:.1%}, {high:.1%}] (N={n})"


def print_table(ds: Dataset, results: list[dict[str, Tally]], methods: list[str]) -> None:
    print(
        f"\n### {ds.name}: {len(ds.intents)} intents; per draw {ds.unseen} unseen, "
        f"{ds.background} background, {ds.per_intent} training examples per in-scope intent"
    )
    print(
        "| method | unseen (OOS) intents | in-scope coverage | in-scope answered accuracy "
        "[95% CI] (N) | OOS answered (all wrong) [95% CI] (N) | fit s |"
    )
    print("|---|---|---|---|---|---|")
    for name in methods:
        pooled = Tally()
        for one in results:
            t = one[name]
            pooled.add(t)
            print(_row(name, t.draws[0], t))
        if len(results) > 1:
            print(_row(f"**{name}**", f"all {len(results)} draws", pooled))


def print_draws(ds: Dataset, seeds: range) -> None:
    for seed in seeds:
        split = draw(ds, seed)
        print(
            f"- seed {seed}: unseen {', '.join(split.unseen)}; background "
            f"{', '.join(split.background)}"
        )


def _row(name: str, draws: str, t: Tally) -> str:
    return (
        f"| {name} | {draws} | {t.answered / t.in_scope:.1%} of {t.in_scope} | "
        f"{rate(t.right, t.answered)} | {rate(t.oos_answered, t.oos)} | {t.fit_s:.1f} |"
    )


def main() -> None:
    from smallfirst.distill.embed_cache import EmbeddingCache

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    seeds = range(1 if args.quick else args.seeds)
    cache = EmbeddingCache()
    methods = list(METHODS)
    print(f"target accuracy {TARGET}; student: logreg on MiniLM (the `distill student` default)")
    for ds in (banking77(), snips()):
        results = [run_draw(ds, draw(ds, seed), cache.encode, methods) for seed in seeds]
        print_table(ds, results, methods)
        print_draws(ds, seeds)
        aucs = [auroc_table(ds, draw(ds, seed), cache.encode) for seed in seeds]
        print(f"\nAUROC, {ds.name} (diagnostic, not tuned on): in-scope vs unseen test inputs")
        print("| score | " + " | ".join(f"seed {seed}" for seed in seeds) + " |")
        print("|---|" + "---|" * len(seeds))
        for name in aucs[0]:
            print(f"| {name} | " + " | ".join(f"{one[name]:.3f}" for one in aucs) + " |")


if __name__ == "__main__":
    main()
