"""Importing smallfirst or building a Registry, Gateway, app or Client writes nothing to disk: the
state folder (./.smallfirst or $SMALLFIRST_HOME) appears only when something is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smallfirst import AsyncClient, Client
from smallfirst.config import Config
from smallfirst.models.registry import Registry, save_measured_throughput
from smallfirst.server import create_app
from smallfirst.server.gateway import Gateway


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_building_a_registry_gateway_app_and_client_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMALLFIRST_HOME")  # the default: ./.smallfirst in the working directory
    Registry(Config())
    Gateway(Config())
    create_app(Config())
    AsyncClient(Config())
    Client(Config())
    assert written(tmp_path) == []


def test_the_state_folder_is_created_on_first_write(state_home: Path) -> None:
    Registry(Config())
    assert not state_home.exists()
    save_measured_throughput("small", 42.0)
    assert (state_home / "throughput.json").exists()
    assert Registry(Config()).config is not None  # and read back without error


def test_importing_the_package_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SMALLFIRST_HOME"} | {"HOME": str(home)}
    modules = "smallfirst, smallfirst.server, smallfirst.cli, smallfirst.models.registry"
    subprocess.run(
        [sys.executable, "-c", f"import {modules}"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=120,
    )
    assert written(tmp_path) == ["home"]
    assert written(home) == []
