"""Shared fixtures: isolated state, the embedded model (loaded once), scripted upstreams."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smallfirst.config import Config
from smallfirst.models.registry import Registry
from smallfirst.testing import BackgroundServer, ScriptedUpstream

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state directory and no config file from the environment."""
    home = tmp_path / "state"
    monkeypatch.setenv("SMALLFIRST_HOME", str(home))
    monkeypatch.delenv("SMALLFIRST_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(scope="session")
def embedded_model_path() -> str:
    from smallfirst.models.llamacpp import default_model_path

    return str(default_model_path())


@pytest.fixture
def embedded_registry(embedded_model_path: str) -> Registry:
    """A registry with the embedded Gemma only (weights load on first use)."""
    return Registry(Config())


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedUpstream, str]]:
    """A real scripted OpenAI-compatible server; yields (script, base_url ending in /v1)."""
    upstream = ScriptedUpstream()
    with BackgroundServer(upstream.app) as server:
        yield upstream, server.url + "/v1"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is not available")
    return path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
