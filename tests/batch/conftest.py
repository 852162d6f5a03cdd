from __future__ import annotations

import json
from pathlib import Path

import pytest

from smallfirst.testing import BackgroundServer, Script, ScriptedUpstream


@pytest.fixture
def upstream_config(tmp_path: Path):
    """A scripted upstream as model `m` ($1/$2 per Mtok) and a config file naming it."""
    upstream = ScriptedUpstream(Script(text="positive", prompt_tokens=10, completion_tokens=2))
    with BackgroundServer(upstream.app) as server:
        config = tmp_path / "smallfirst.yaml"
        config.write_text(
            "default_model: m\nmodels:\n"
            f"  - {{name: m, backend: openai, base_url: '{server.url}/v1', tier: small,"
            " price: {input: 1, output: 2}}\n"
        )
        yield upstream, config


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
