"""Run an ASGI app under uvicorn on a background thread, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def edge_options(app: Any) -> dict[str, Any]:
    """A gateway app runs with its configured edge limits, as under `smallfirst serve`."""
    gateway = getattr(getattr(app, "state", None), "gateway", None)
    if gateway is None:
        return {}
    from smallfirst.server.edge_limits import uvicorn_options

    return uvicorn_options(gateway.config.server)


class BackgroundServer:
    """`with BackgroundServer(app) as server: httpx.get(server.url + "/health")`."""

    def __init__(self, app: Any, port: int | None = None, **uvicorn_options: Any) -> None:
        self.port = port or free_port()
        options = {"log_level": "warning", "lifespan": "on", **edge_options(app), **uvicorn_options}
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **options)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
