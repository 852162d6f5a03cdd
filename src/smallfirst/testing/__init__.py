"""Real local servers for tests, benchmarks and offline trials (no network mocks)."""

from smallfirst.testing.background import BackgroundServer, free_port
from smallfirst.testing.scripted import Script, ScriptedUpstream

__all__ = ["BackgroundServer", "Script", "ScriptedUpstream", "free_port"]
