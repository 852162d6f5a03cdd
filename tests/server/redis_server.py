"""A throwaway Redis server for tests of state shared by several gateway replicas.

Uses the Debian `redis-server` binary (`make system-deps`) and the `redis` package; tests skip
with the reason when either is missing. No persistence (`--save ''`), loopback only.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from smallfirst.testing.background import free_port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a fresh server, stopped after the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server missing: `make system-deps` installs Debian redis-server")
    redis = pytest.importorskip("redis", reason="redis-py missing: pip install -e '.[dev]'")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="smallfirst-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    process = subprocess.Popen(
        [*args, "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.skip(f"redis-server did not start: {process.stderr.read()[-300:]!r}")
                time.sleep(0.05)
        else:
            pytest.skip("redis-server did not answer a ping within 10 s")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
