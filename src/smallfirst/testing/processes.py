"""The gateway and a scripted upstream as real subprocesses, for load runs and crash tests.

A thread-hosted server (`BackgroundServer`) cannot be killed mid-request; a subprocess can, which
is what "the gateway restarts while streams are open" needs. Both listen on loopback only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import yaml

from smallfirst.testing.background import free_port
from smallfirst.testing.scripted import Script

_UPSTREAM = (
    "import json, sys, uvicorn\n"
    "from smallfirst.testing.scripted import Script, ScriptedUpstream\n"
    "up = ScriptedUpstream(default=Script(**json.loads(sys.argv[2])))\n"
    "uvicorn.run(up.app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning',"
    " access_log=False)\n"
)
_SERVE = "from smallfirst.cli import main; main()"


class ServerProcess:
    """One server subprocess on a free loopback port; `stop()` ends it (SIGTERM, then KILL)."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.command, self.env, self.log, self.port = command, env, log, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float = 120.0) -> ServerProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-1500:]
                raise RuntimeError(
                    f"{self.command[-1]} exited with {self.process.returncode}:\n{tail}"
                )
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.url}{ready_path} did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown hook runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> bool:
        """A clean shutdown (SIGTERM: the gateway flushes its ledger); KILL if it hangs.
        True when it ended by itself (uvicorn re-raises SIGTERM after its graceful shutdown)."""
        if self.process is None:
            return False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return False
        return self.process.returncode in (0, -signal.SIGTERM)


def start_upstream(workdir: Path, script: Script | None = None) -> ServerProcess:
    """A `ScriptedUpstream` answering every request with `script` (default: a quick "ok")."""
    port = free_port()
    spec = json.dumps(asdict(script or Script()))
    command = [sys.executable, "-c", _UPSTREAM, str(port), spec]
    server = ServerProcess(command, dict(os.environ), workdir / f"upstream-{port}.log", port)
    return server.start("/v1/models")


def gateway_config(workdir: Path, upstream_url: str, server: dict[str, Any] | None = None) -> Path:
    """A `smallfirst.yaml` with one small model on `upstream_url` (priced, so budgets bite)."""
    model = {
        "name": "small",
        "backend": "openai",
        "base_url": upstream_url + "/v1",
        "upstream_model": "up-small",
        "tier": "small",
        "price": {"input": 1.0, "output": 2.0},
        "timeout_s": 10.0,
    }
    path = workdir / "smallfirst.yaml"
    path.write_text(yaml.safe_dump({"models": [model], "server": server or {}}))
    return path


def gateway_process(workdir: Path, config: Path, port: int | None = None) -> ServerProcess:
    """`smallfirst serve` with its state (ledger, keys) under `workdir/state`; not started."""
    port = port or free_port()
    env = {**os.environ, "SMALLFIRST_HOME": str(workdir / "state"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", _SERVE, "serve", "--port", str(port), "--config", str(config)]
    return ServerProcess(command, env, workdir / f"gateway-{port}.log", port)
