"""The gateway benchmark is code too: its HTTP client, measurements, report and a tiny run."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from smallfirst.testing import BackgroundServer, ScriptedUpstream

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "gateway.py"
spec = importlib.util.spec_from_file_location("bench_gateway", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_gateway"] = bench
spec.loader.exec_module(bench)


def test_client_measures_latency_and_throughput_against_a_real_server() -> None:
    upstream = ScriptedUpstream()
    with BackgroundServer(upstream.app) as server:
        target = bench.Target("direct", server.port, pid=os.getpid())
        asyncio.run(bench.measure_latency(target, 30))
        asyncio.run(bench.measure_throughput(target, 4, 0.3))
    assert len(target.latencies_ms) == 30 and target.errors == 0
    assert target.throughput[0] > 0 and target.cpu_ms_per_request[0] > 0
    assert len(upstream.received) >= 50 + 4  # 20 warm-up + 30 timed, then the throughput run


def test_client_reads_chunked_answers_and_counts_errors() -> None:
    async def chunked(_request):
        async def body():
            yield b'{"a":'
            yield b"1}"

        return StreamingResponse(body(), status_code=503)

    app = Starlette(routes=[Route("/v1/chat/completions", chunked, methods=["POST"])])
    with BackgroundServer(app) as server:
        target = bench.Target("chunked", server.port)
        asyncio.run(bench.measure_latency(target, 3))
    assert target.errors == 3  # every answer read to its end, the connection reused


def test_report_subtracts_the_direct_baseline_and_compares_with_litellm() -> None:
    def target(name: str, base: float, rps: float):
        t = bench.Target(name, 0)
        t.latencies_ms = [base + i / 100 for i in range(101)]
        t.throughput = [rps]
        t.cpu_ms_per_request = [0.5 if "smallfirst" in name else 10.0]
        return t

    args = type("Args", (), {"rounds": 1, "requests": 101, "seconds": 1.0, "concurrency": 2})
    text = bench.report(
        [
            target("direct upstream", 1, 1000),
            target("smallfirst gateway", 1.5, 600),
            target("LiteLLM proxy", 11, 100),
        ],
        args,
    )
    assert "| smallfirst gateway | 2.000 | 2.490 | 0.500 | 0.500 | 600 | 0.500 | 2000 | 0 |" in text
    assert "smallfirst / LiteLLM requests/s: 6.00x" in text
    assert "smallfirst / LiteLLM requests per CPU-second: 20.00x" in text


@pytest.mark.slow
def test_a_tiny_run_without_litellm_prints_the_table() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--no-litellm",
            "--rounds",
            "1",
            "--requests",
            "20",
            "--seconds",
            "0.3",
            "--concurrency",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| smallfirst gateway |" in result.stdout and "| direct upstream |" in result.stdout
    assert "| pass-through floor |" in result.stdout
    assert "LiteLLM: no executable given" in result.stdout
