"""A real, local Anthropic Messages API server for the Anthropic provider's tests."""

from collections.abc import Iterator

import pytest

from smallfirst.testing import BackgroundServer
from smallfirst.testing.anthropic_scripted import ScriptedAnthropic


@pytest.fixture
def anthropic_upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedAnthropic]:
    """The scripted server, its `url` set; the provider finds its key in the environment."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    scripted = ScriptedAnthropic()
    with BackgroundServer(scripted.app) as server:
        scripted.url = server.url
        yield scripted
