"""Progress when the output is not a terminal: a line per candidate now and then, and at its end."""

from __future__ import annotations

import io

from rich.console import Console

from smallfirst.evaluate.progress import LineProgress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_interval_and_at_the_end():
    buffer = io.StringIO()
    clock = FakeClock()
    progress = LineProgress(Console(file=buffer, width=200), every_s=10.0, clock=clock)
    task = progress.add_task("student", total=100)
    other = progress.add_task("big", total=2)
    for _ in range(40):
        clock.now += 0.125  # 5 s in all: no line yet
        progress.advance(task)
    assert buffer.getvalue() == ""
    clock.now += 5.0
    progress.advance(task, 10)  # 10 s since the start: one line
    progress.advance(other, 2)  # finished: always a line
    clock.now += 1.0
    progress.advance(task, 50)  # done
    assert buffer.getvalue().splitlines() == [
        "student: 50/100 (50%), 5.0 items/s",
        "big: 2/2 (done), 0.2 items/s",
        "student: 100/100 (done), 9.1 items/s",
    ]
