"""scripts/check_cli_help.py: the README's `smallfirst` commands and options exist in the CLI."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from smallfirst.cli import app

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_cli_help.py"
spec = importlib.util.spec_from_file_location("check_cli_help", SCRIPT)
assert spec is not None and spec.loader is not None
check = importlib.util.module_from_spec(spec)
sys.modules["check_cli_help"] = check
spec.loader.exec_module(check)

CLI = typer.main.get_command(app)


def problems(readme: str) -> list[str]:
    return check.problems(readme, CLI)


def test_the_readme_matches_the_cli() -> None:
    """The check itself, as `make test` runs it (a subprocess: the script's own entry point)."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_valid_quotes_pass() -> None:
    readme = """
```bash
.venv/bin/smallfirst ask "Name three colors." --model small   # a comment --not-an-option
smallfirst -c my.yaml serve [--host 0.0.0.0] [--port 8080] | tee log
smallfirst distill intents.yaml --teacher gpt-4o \\
  --inputs unlabeled.jsonl
smallfirst keys revoke <key id>
```

`smallfirst models --measure` and `smallfirst keys create --name NAME`; see `smallfirst.yaml`.
`smallfirst ask` options: `--model/-m NAME`, `--system/-s`. Use `-` for stdin. Then
`--not-checked` belongs to the next sentence.
"""
    assert problems(readme) == []


@pytest.mark.parametrize(
    ("readme", "wanted"),
    [
        ("```bash\nsmallfirst ask hi --modle small\n```", "README.md:2: `smallfirst ask hi"),
        ("```\nsmallfirst keys revok team-a\n```", "keys has no command 'revok'"),
        ("```bash\nsmallfirst serve [--prot 8080]\n```", "--prot"),
        ("```bash\nsmallfirst distill t.yaml \\\n  --techer x\n```", "--techer"),
        ("`smallfirst kb serch docs q`", "kb has no command 'serch'"),
        ("`smallfirst ask` options: `--model/-m NAME`, `--sistem/-s`.", "has no option --sistem"),
    ],
)
def test_stale_quotes_are_reported_with_their_line(readme: str, wanted: str) -> None:
    [found] = problems(readme)
    assert wanted in found and found.startswith("README.md:")


def test_python_and_yaml_blocks_are_not_commands() -> None:
    readme = "```python\nsmallfirst --bogus\n```\n```yaml\nsmallfirst: --bogus\n```"
    assert problems(readme) == []


def test_a_stale_readme_fails_the_script(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("```bash\nsmallfirst serve --prot 8080\n```\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(readme)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "--prot" in done.stderr
