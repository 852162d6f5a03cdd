"""The embedded-model benchmark is code too: its quick mode runs end to end and prints tables."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "embedded.py"


def test_quick_run_prints_every_table(embedded_model_path):
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=1800
    )
    assert run.returncode == 0, run.stderr[-2000:]
    headings = ("<- best", "alternating rounds", "smallfirst in-process", "smallfirst gateway")
    for heading in (*headings, "banking77"):
        assert heading in run.stdout
