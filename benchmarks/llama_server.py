"""llama.cpp's own `llama-server`, built from the llama.cpp that llama-cpp-python 0.3.36 vendors.

The sdist is fetched with pip and only the `llama-server` target is built, once, into
benchmarks/.llama-server/ (git-ignored); later runs reuse the binary.
    python benchmarks/llama_server.py        # build now (minutes on 2 cores)
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

VERSION = "0.3.36"
HOME = Path(__file__).resolve().parent / ".llama-server"
BINARY = HOME / "build" / "bin" / "llama-server"
PIP_ARGS = [f"llama-cpp-python=={VERSION}", "--no-deps", "--no-binary", ":all:"]
CMAKE_FLAGS = ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
CMAKE_FLAGS += ["-DLLAMA_BUILD_SERVER=ON", "-DGGML_NATIVE=ON"]


def _source() -> Path:
    """The vendored llama.cpp tree of the llama-cpp-python sdist."""
    source = HOME / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if source.is_dir():
        return source
    HOME.mkdir(parents=True, exist_ok=True)
    sdist = HOME / f"llama_cpp_python-{VERSION}.tar.gz"
    if not sdist.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", *PIP_ARGS, "-d", str(HOME)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/vendor/llama.cpp/" in m.name]
        archive.extractall(HOME, members=members, filter="data")
    return source


def build(jobs: int = 2) -> Path:
    """The llama-server binary, built if missing (CPU only, no curl, like the Python wheel)."""
    if BINARY.exists():
        return BINARY
    source = _source()
    build_dir = HOME / "build"
    quiet = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            *CMAKE_FLAGS,
        ],
        **quiet,
    )
    subprocess.run(
        ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)],
        **quiet,
    )
    return BINARY


@contextlib.contextmanager
def running(model: Path, port: int, parallel: int, threads: int, context: int) -> Iterator[str]:
    """A llama-server on `port` with `parallel` slots of `context` tokens each; yields its URL."""
    command = [str(build()), "-m", str(model), "--port", str(port), "--host", "127.0.0.1"]
    command += ["--parallel", str(parallel), "--cont-batching", "-t", str(threads)]
    command += ["-tb", str(threads), "-c", str(context * parallel), "--no-repack"]
    command += ["--no-webui", "--log-disable"]
    process = subprocess.Popen(
        command, cwd=HOME, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama-server exited with status {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("llama-server did not become healthy in 120 s")


if __name__ == "__main__":
    print(build())
