"""Two real scripted OpenAI-compatible servers standing in for a small and a large model."""

from __future__ import annotations

import pytest

from smallfirst.config import parse_config
from smallfirst.models.registry import Registry
from smallfirst.testing import BackgroundServer, Script, ScriptedUpstream

NOTES = '{"facts": ["budget approved"], "topics": ["budget"]}'


@pytest.fixture
def two_tiers():
    small, large = ScriptedUpstream(Script(text=NOTES)), ScriptedUpstream(Script(text="deep view"))
    with BackgroundServer(small.app) as s_server, BackgroundServer(large.app) as l_server:
        config = parse_config(
            f"""
baseline_model: large
default_model: small
models:
  - {{name: small, backend: openai, base_url: "{s_server.url}/v1", tier: small,
      price: {{input: 0.1, output: 0.1}}}}
  - {{name: large, backend: openai, base_url: "{l_server.url}/v1", tier: large,
      price: {{input: 10, output: 30}}}}
"""
        )
        yield Registry(config), small, large
