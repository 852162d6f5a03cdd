"""A tiny outcome set with an obvious pattern: maths needs the large model, greetings do not."""

from __future__ import annotations

import csv
from pathlib import Path

MATH = [
    "Solve the equation {a}x + {b} = {c} for x and show each step.",
    "Compute the integral of x^{a} times sin(x) from 0 to {b}.",
    "What is the derivative of {a}x^3 - {b}x + {c}? Explain.",
    "Prove that the sum of the first {a} odd numbers is a perfect square.",
]
CHAT = [
    "Say hello to my friend {name}.",
    "Write a one-line thank-you note to {name}.",
    "Tell {name} good morning in a cheerful way.",
    "Wish {name} a happy birthday.",
]
NAMES = ["Ana", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo"]


def synthetic_rows(per_template: int = 10, offset: int = 0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(offset, offset + per_template):
        for t in MATH:
            rows.append({"prompt": t.format(a=i + 2, b=i + 5, c=3 * i + 1), "small": 0, "large": 1})
        for t in CHAT:
            rows.append(
                {"prompt": t.format(name=NAMES[i % len(NAMES)] + str(i)), "small": 1, "large": 1}
            )
    return rows


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["prompt", "small", "large"])
        writer.writeheader()
        writer.writerows(rows)
    return path
