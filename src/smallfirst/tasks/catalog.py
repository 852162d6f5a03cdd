"""Tasks named in smallfirst.yaml (`tasks: {name: spec.yaml}`), loaded on first use.

The gateway and the CLI look tasks up here by name; a spec file is read and validated once
per process, and a bad file is reported when its task is first asked for, naming the file.
"""

from __future__ import annotations

from pathlib import Path

from smallfirst.config import Config
from smallfirst.errors import NotFoundError
from smallfirst.tasks.task import Task


class TaskCatalog:
    def __init__(self, config: Config) -> None:
        self.paths = dict(config.tasks)
        self._loaded: dict[str, Task] = {}

    def names(self) -> list[str]:
        return sorted(self.paths)

    def get(self, name: str) -> Task:
        if name not in self.paths:
            known = ", ".join(self.names()) or "none (add a `tasks:` section to smallfirst.yaml)"
            raise NotFoundError(f"The task {name!r} is not configured. Configured tasks: {known}")
        if name not in self._loaded:
            task = Task.from_yaml(Path(self.paths[name]))
            task.spec.name = name
            self._loaded[name] = task
        return self._loaded[name]
