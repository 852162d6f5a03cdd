"""`smallfirst replay` as a real process on a real port."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from smallfirst.testing import free_port


def test_replay_serves_recorded_answers_until_stopped(tmp_path):
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("prompt,label\nhello there,positive\n")
    port = free_port()
    args = ["replay", str(outcomes), "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from smallfirst.cli import main; main()", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"model": "replay", "messages": [{"role": "user", "content": "hello there"}]}
        reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=5).json()
        assert reply["choices"][0]["message"]["content"] == "positive"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "replaying 1 recorded answers" in stderr


def test_replay_with_a_bad_file_exits_with_a_message(tmp_path):
    process = subprocess.run(
        [sys.executable, "-c", "from smallfirst.cli import main; main()", "replay", "missing.csv"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1 and "does not exist" in process.stderr
