"""Rebuild sentiment.jsonl, examples.jsonl and replay_outcomes.csv from TweetEval (read-only
copy in ../shared/data). Deterministic: the first items of the validation split, in order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[2] / "shared" / "data" / "tasks" / "tweeteval_sentiment"
LABELS = ["negative", "neutral", "positive"]
EVAL_ITEMS = 50


def main() -> None:
    texts = (SOURCE / "val_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [LABELS[int(x)] for x in (SOURCE / "val_labels.txt").read_text().split()]
    rows = [(t.strip(), y) for t, y in zip(texts, labels, strict=True) if t.strip()]
    evaluated, rest = rows[:EVAL_ITEMS], rows[EVAL_ITEMS:]
    shots = [next(r for r in rest if r[1] == label) for label in LABELS]
    with (HERE / "sentiment.jsonl").open("w", encoding="utf-8") as out:
        for text, label in evaluated:
            out.write(json.dumps({"input": text, "expected": label}, ensure_ascii=False) + "\n")
    with (HERE / "examples.jsonl").open("w", encoding="utf-8") as out:
        for text, label in shots:
            out.write(json.dumps({"input": text, "output": label}, ensure_ascii=False) + "\n")
    with (HERE / "replay_outcomes.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["prompt", "label"])
        writer.writerows(evaluated)


if __name__ == "__main__":
    main()
