"""Exactly-once output across real `kill -9`s, and the same job on a local Ray instance."""

import random
import sqlite3
import subprocess
import sys
import time

import pytest

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.batch.journal import journal_path
from smallfirst.ledger import Ledger
from smallfirst.testing import Script
from tests.batch.conftest import read_jsonl, write_jsonl


def journal_count(out) -> int:
    path = journal_path(out)
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_minus_9_at_any_moment_then_rerun_gives_every_item_once(upstream_config, tmp_path):
    upstream, config = upstream_config
    upstream.default = Script(text="positive", delay_s=0.03, completion_tokens=2)
    total = 240
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"r{i}", "text": f"item {i}"} for i in range(total)]
    )
    out = tmp_path / "out.jsonl"
    command = [
        sys.executable,
        "-m",
        "smallfirst",
        "--config",
        str(config),
        "batch",
        str(source),
        "--out",
        str(out),
        "-j",
        "4",
    ]
    rng = random.Random(11)
    kills = 0
    for _ in range(3):
        target = journal_count(out) + rng.randint(5, 40)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while journal_count(out) < target and process.poll() is None:
            assert time.monotonic() < deadline, "batch made no progress"
            time.sleep(0.01)
        if process.poll() is None:
            process.kill()  # SIGKILL: no cleanup, no flush
            kills += 1
        process.wait()
    assert kills >= 2
    assert journal_count(out) < total
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    ids = [row["id"] for row in read_jsonl(out)]
    assert ids == [f"r{i}" for i in range(total)]  # every item, once, in order
    assert journal_count(out) == total
    assert len(upstream.received) <= total + 4 * kills  # only in-flight items were redone


def test_cli_reports_and_exit_codes(upstream_config, tmp_path):
    _, config = upstream_config
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "x"}, "{bad"])
    out = tmp_path / "out.jsonl"
    command = [
        sys.executable,
        "-m",
        "smallfirst",
        "--config",
        str(config),
        "batch",
        str(source),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 done, 1 rejected" in done.stdout
    missing = subprocess.run(
        [*command[:6], str(tmp_path / "nope.jsonl"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "does not exist" in missing.stderr


async def test_ray_engine_finishes_a_run_the_local_engine_started(upstream_config, tmp_path):
    """...and records its items in the ledger from the driver, as the local engine does: a
    request row per item, and hop rows for the item whose first attempt got a 503."""
    pytest.importorskip("ray")
    import ray

    from smallfirst.batch.ray_engine import run_batch_ray

    upstream, config = upstream_config
    items = [{"id": f"r{i}", "text": f"item {i}"} for i in range(12)]
    source = write_jsonl(tmp_path / "in.jsonl", [*items, "{bad json"])
    out = tmp_path / "out.jsonl"
    spec = WorkSpec(model="m", config=str(config))
    per_item = (5 * 1 + 2 * 2) / 1e6
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        local = await run_batch(
            spec.build(ledger=ledger),
            BatchOptions(source, out, concurrency=1, max_usd=per_item * 4.5),
        )
        assert local.stopped and local.done < 12
        upstream.enqueue(Script("error", status=503))  # one Ray item's first attempt
        try:
            summary = run_batch_ray(
                spec, BatchOptions(source, out), replicas=2, batch_size=4, ledger=ledger
            )
        finally:
            ray.shutdown()
        ledger.flush()
        rows = ledger.store.rows()
    finally:
        ledger.close()
    assert summary.resumed == local.done + local.rejected
    assert summary.done == 12 - local.done
    assert [r["id"] for r in read_jsonl(out)] == [f"r{i}" for i in range(12)]
    assert len(read_jsonl(BatchOptions(source, out).rejects_path)) == 1
    requests = [r for r in rows if r["kind"] == "request"]
    assert len(requests) == 12 and {r["endpoint"] for r in requests} == {"batch"}
    charged = (10 * 1 + 2 * 2) / 1e6  # every item's tokens at model m's price
    assert all(r["status"] == 200 and r["cost_usd"] == pytest.approx(charged) for r in requests)
    hops = sorted((r for r in rows if r["kind"] == "hop"), key=lambda r: r["hop"])
    assert [(h["step"], h["outcome"]) for h in hops] == [("failure", "error"), ("answer", "ok")]
    assert len({h["request_id"] for h in hops}) == 1 and "503" in hops[0]["error"]
