"""Progress of a long evaluation: a rich bar on a terminal, plain periodic lines elsewhere.

A bar redrawn in place means nothing in a CI log or a file, and rich draws nothing at all when
its console is not a terminal, so a run of many minutes would print nothing until the end.
`LineProgress` writes one line per candidate every few seconds instead (and when it is done).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.console import Console


class ProgressSink(Protocol):
    """The part of `rich.progress.Progress` the runner uses."""

    def add_task(self, description: str, *, total: float | None = ...) -> Any: ...

    def advance(self, task_id: Any, advance: float = 1) -> None: ...


@dataclass(slots=True)
class _Task:
    name: str
    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    printed: float = field(default_factory=time.monotonic)


class LineProgress:
    """`name: done/total (share) items/s` every `every_s` seconds per task, and at its end."""

    def __init__(
        self,
        console: Console,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.every_s = every_s
        self.clock = clock
        self._tasks: list[_Task] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, *, total: float | None = None) -> int:
        now = self.clock()
        self._tasks.append(_Task(description, int(total or 0), started=now, printed=now))
        return len(self._tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        task = self._tasks[task_id]
        task.done += int(advance)
        now = self.clock()
        if task.done >= task.total or now - task.printed >= self.every_s:
            task.printed = now
            self.console.print(_line(task, now), highlight=False, soft_wrap=True)


def _line(task: _Task, now: float) -> str:
    elapsed = max(now - task.started, 1e-9)
    share = task.done / task.total if task.total else 1.0
    state = "done" if task.done >= task.total else f"{share:.0%}"
    return f"{task.name}: {task.done}/{task.total} ({state}), {task.done / elapsed:.1f} items/s"
