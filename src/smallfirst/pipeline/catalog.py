"""Pipelines named in smallfirst.yaml (`pipelines: {name: file.yaml}`), loaded on first use.

Relative paths are read from the config file's folder, so a config and its pipelines can be
moved together.
"""

from __future__ import annotations

from pathlib import Path

from smallfirst.config import Config, find_config_path
from smallfirst.errors import NotFoundError
from smallfirst.pipeline.pipeline import Pipeline


class PipelineCatalog:
    def __init__(self, config: Config, base_dir: Path | None = None) -> None:
        self.paths = dict(config.pipelines)
        config_file = find_config_path()
        self.base_dir = base_dir or (config_file.parent if config_file else Path.cwd())
        self._loaded: dict[str, Pipeline] = {}

    def names(self) -> list[str]:
        return sorted(self.paths)

    def get(self, name: str) -> Pipeline:
        if name not in self.paths:
            known = (
                ", ".join(self.names()) or "none (add a `pipelines:` section to smallfirst.yaml)"
            )
            raise NotFoundError(
                f"The pipeline {name!r} is not configured. Configured pipelines: {known}"
            )
        if name not in self._loaded:
            pipeline = Pipeline.from_yaml(self.base_dir / self.paths[name])
            pipeline.spec.name = name
            self._loaded[name] = pipeline
        return self._loaded[name]
