"""Shared fixtures: isolated state, the embedded model (loaded once), scripted upstreams."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass
class ChromiumPage:
    """A headless Chromium page and every console error / uncaught exception it reported."""

    page: Any
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def chromium_page() -> Iterator[ChromiumPage]:
    """Debian's /usr/bin/chromium driven by Playwright (sync API: use it from sync tests).

    Skips when the browser (`make system-deps`) or the playwright package is missing; never
    downloads a browser."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install it with `make system-deps` (Debian chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright missing")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            result = ChromiumPage(page)
            page.on(
                "console",
                lambda msg: result.console_errors.append(msg.text) if msg.type == "error" else None,
            )
            page.on("pageerror", lambda exc: result.console_errors.append(str(exc)))
            yield result
        finally:
            browser.close()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; the calling test is skipped when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is not available")
    return path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
