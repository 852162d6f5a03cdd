"""Gateway overhead: our gateway and LiteLLM's proxy in front of the same fast local upstream.

    python benchmarks/gateway.py [--litellm .venv-bench/bin/litellm] [--rounds 3]

Starts the servers as subprocesses, each a single uvicorn worker: the upstream (the scripted
OpenAI-compatible server, answering at once), `smallfirst serve`, the pass-through floor (the
same web stack forwarding the bytes and doing nothing else: what no gateway on it can go
below) and, when its executable is given or found, `litellm --config ...`. Then,
interleaved in rounds so noise hits all alike:

* latency: sequential non-streamed chat requests; p50/p99 minus the direct upstream's = added;
* throughput: `--concurrency` keep-alive connections for `--seconds`; requests/s end to end,
  and the CPU time the server process (and its children) spent per request, which gives the
  requests/s one fully used core would serve, whatever else the machine is doing.

The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, so the
client costs little next to the servers. Everything runs on this machine, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import yaml

from smallfirst.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
BODY = orjson.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 8}
)
UPSTREAM_CODE = (
    "import sys, uvicorn\n"
    "from smallfirst.testing import ScriptedUpstream\n"
    "uvicorn.run(ScriptedUpstream().app, host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning', access_log=False)\n"
)

FLOOR_CODE = (
    "import sys, aiohttp, uvicorn\n"
    "from starlette.applications import Starlette\n"
    "from starlette.responses import Response\n"
    "from starlette.routing import Route\n"
    "up, sessions = sys.argv[1] + '/chat/completions', []\n"
    "async def chat(request):\n"
    "    if not sessions: sessions.append(aiohttp.ClientSession())\n"
    "    headers = {'Content-Type': 'application/json'}\n"
    "    async with sessions[0].post(up, data=await request.body(), headers=headers) as r:\n"
    "        return Response(await r.read(), media_type='application/json')\n"
    "app = Starlette(routes=[Route('/v1/chat/completions', chat, methods=['POST'])])\n"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning',"
    " access_log=False)\n"
)
"""The floor of the gateway's own stack: uvicorn, starlette and aiohttp passing the request
through and nothing else (no parsing, routing, ledger or limits)."""


class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read exactly one response."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-bench\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            start = lower.index(b"content-length:") + 15
            length = int(lower[start : lower.index(b"\r\n", start)])
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Target:
    name: str
    port: int
    path: str = "/v1/chat/completions"
    pid: int | None = None
    """The server's process; its CPU time (children included) is read around each run."""
    latencies_ms: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    cpu_ms_per_request: list[float] = field(default_factory=list)
    errors: int = 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, parents = 0.0, {pid}
    stats = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats.append((int(entry.name), (entry / "stat").read_text()))
            except OSError:
                continue
    changed = True
    while changed:  # collect the tree: children may be listed before their parents
        changed = False
        for child, stat in stats:
            fields = stat.rsplit(")", 1)[1].split()
            if child not in parents and int(fields[1]) in parents:
                parents.add(child)
                changed = True
    for child, stat in stats:
        if child in parents:
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def measure_latency(target: Target, count: int) -> None:
    conn = Connection(target.port, target.path)
    for _ in range(20):  # warm the connection and the server's caches
        await conn.send()
    for _ in range(count):
        started = time.perf_counter()
        status = await conn.send()
        target.latencies_ms.append((time.perf_counter() - started) * 1000)
        target.errors += status != 200
    conn.close()


async def measure_throughput(target: Target, concurrency: int, seconds: float) -> None:
    conns = [Connection(target.port, target.path) for _ in range(concurrency)]
    await asyncio.gather(*(c.send() for c in conns))
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            status = await conn.send()
            done += 1
            target.errors += status != 200

    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    target.throughput.append(done / (time.perf_counter() - started))
    if target.pid:
        target.cpu_ms_per_request.append((cpu_seconds(target.pid) - cpu_before) * 1000 / done)
    for conn in conns:
        conn.close()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            response = httpx.post(url, content=BODY, headers={"authorization": "Bearer sk-bench"})
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def start_servers(
    tmp: Path, litellm: str | None
) -> tuple[list[subprocess.Popen], list[Target], str | None]:
    env = {**os.environ, "SMALLFIRST_HOME": str(tmp / "state"), "PYTHONUNBUFFERED": "1"}
    up_port, our_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    processes = [start([sys.executable, "-c", UPSTREAM_CODE, str(up_port)], env, tmp / "up.log")]
    config = tmp / "smallfirst.yaml"
    model = {"name": "bench", "backend": "openai", "base_url": upstream, "tier": "small"}
    config.write_text(yaml.safe_dump({"models": [model]}))
    serve = [sys.executable, "-c", "from smallfirst.cli import main; main()", "serve"]
    serve += ["--port", str(our_port), "--config", str(config)]
    processes.append(start(serve, env, tmp / "smallfirst.log"))
    floor_port = free_port()
    floor = [sys.executable, "-c", FLOOR_CODE, upstream, str(floor_port)]
    processes.append(start(floor, env, tmp / "floor.log"))
    targets = [
        Target("direct upstream", up_port),
        Target("smallfirst gateway", our_port),
        Target("pass-through floor", floor_port),
    ]
    litellm_note = None
    if litellm:
        port = free_port()
        litellm_config = tmp / "litellm.yaml"
        params = {"model": "openai/bench", "api_base": upstream, "api_key": "sk-none"}
        litellm_config.write_text(
            yaml.safe_dump({"model_list": [{"model_name": "bench", "litellm_params": params}]})
        )
        litellm_env = {
            **env,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: no cost-map download
            "LITELLM_LOG": "ERROR",
            # no auth, like our gateway here (auth off): LiteLLM otherwise refuses to start
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        }
        command = [litellm, "--config", str(litellm_config), "--port", str(port)]
        command += ["--num_workers", "1"]
        processes.append(start(command, litellm_env, tmp / "litellm.log"))
        targets.append(Target("LiteLLM proxy", port))
    for target, process in zip(targets, processes, strict=True):
        target.pid = process.pid
        try:
            wait_ready(f"http://127.0.0.1:{target.port}{target.path}", process)
        except RuntimeError as exc:
            if target.name != "LiteLLM proxy":
                raise
            log = (tmp / "litellm.log").read_text()[-2000:]
            litellm_note = f"LiteLLM proxy did not start: {exc}\n{log}"
            targets.remove(target)
    return processes, targets, litellm_note


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(targets: list[Target], args: argparse.Namespace) -> str:
    direct = targets[0]
    d50, d99 = pct(direct.latencies_ms, 50), pct(direct.latencies_ms, 99)
    lines = [
        f"{args.rounds} rounds x {args.requests} sequential requests (latency) and "
        f"{args.seconds:g} s at concurrency {args.concurrency} (throughput) per target",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | req/s (median) "
        "| CPU ms/req | req/s per CPU core | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        p50, p99 = pct(t.latencies_ms, 50), pct(t.latencies_ms, 99)
        added = "-" if t is direct else f"{p50 - d50:.3f}"
        added99 = "-" if t is direct else f"{p99 - d99:.3f}"
        cpu = statistics.median(t.cpu_ms_per_request) if t.cpu_ms_per_request else None
        per_core = "-" if not cpu else f"{1000 / cpu:.0f}"
        lines.append(
            f"| {t.name} | {p50:.3f} | {p99:.3f} | {added} | {added99} | "
            f"{statistics.median(t.throughput):.0f} | {'-' if cpu is None else f'{cpu:.3f}'} | "
            f"{per_core} | {t.errors} |"
        )
    names = [t.name for t in targets]
    if "LiteLLM proxy" in names:
        ours = statistics.median(targets[names.index("smallfirst gateway")].throughput)
        theirs = statistics.median(targets[names.index("LiteLLM proxy")].throughput)
        lines += ["", f"smallfirst / LiteLLM requests/s: {ours / theirs:.2f}x"]
        ours_cpu = targets[names.index("smallfirst gateway")].cpu_ms_per_request
        theirs_cpu = targets[names.index("LiteLLM proxy")].cpu_ms_per_request
        if ours_cpu and theirs_cpu:
            ratio = statistics.median(theirs_cpu) / statistics.median(ours_cpu)
            lines.append(f"smallfirst / LiteLLM requests per CPU-second: {ratio:.2f}x")
    return "\n".join(lines)


async def run_rounds(targets: list[Target], args: argparse.Namespace) -> None:
    for round_no in range(args.rounds):
        for target in targets:
            await measure_latency(target, args.requests)
            await measure_throughput(target, args.concurrency, args.seconds)
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)


def default_litellm() -> str | None:
    local = ROOT / ".venv-bench" / "bin" / "litellm"
    return str(local) if local.exists() else shutil.which("litellm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="sequential, per round")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput, per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--litellm", default=default_litellm(), help="litellm executable")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    litellm = None if args.no_litellm else args.litellm
    with tempfile.TemporaryDirectory() as tmp:
        processes, targets, note = start_servers(Path(tmp), litellm)
        try:
            asyncio.run(run_rounds(targets, args))
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=30)
    print(report(targets, args))
    if litellm is None:
        print("\nLiteLLM: no executable given or found (--litellm PATH)")
    if note:
        print("\n" + note)


if __name__ == "__main__":
    main()
