"""Several scripted OpenAI-compatible servers on their own ports, configured as models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from smallfirst.config import Config
from smallfirst.models.registry import Registry
from smallfirst.routing.fallback import FailoverCaller
from smallfirst.testing import BackgroundServer, ScriptedUpstream

PRICES = {
    "tiny": (0.0, 0.0),
    "small": (0.1, 0.4),
    "medium": (1.0, 4.0),
    "large": (10.0, 30.0),
}


@contextmanager
def scripted_models(
    *names: str,
) -> Iterator[tuple[dict[str, ScriptedUpstream], dict[str, str]]]:
    """A running ScriptedUpstream per model name, and its base URL, both by name."""
    with ExitStack() as stack:
        upstreams = {}
        urls = {}
        for name in names:
            upstream = ScriptedUpstream()
            server = stack.enter_context(BackgroundServer(upstream.app))
            upstreams[name] = upstream
            urls[name] = server.url + "/v1"
        yield upstreams, urls


def registry_for(
    urls: dict[str, str],
    tiers: dict[str, str],
    cascades: dict[str, Any] | None = None,
    failover: dict[str, Any] | None = None,
    timeout_s: float = 5.0,
    timeouts: dict[str, float] | None = None,
    **extra: Any,
) -> Registry:
    models = [
        {
            "name": name,
            "backend": "openai",
            "base_url": url,
            "tier": tiers[name],
            "timeout_s": (timeouts or {}).get(name, timeout_s),
            "price": {"input": PRICES[tiers[name]][0], "output": PRICES[tiers[name]][1]},
        }
        for name, url in urls.items()
    ]
    failover = {"retries": 2, "backoff_s": 0.01, "max_backoff_s": 0.05, **(failover or {})}
    return Registry(
        Config.model_validate(
            {"models": models, "cascades": cascades or {}, "failover": failover, **extra}
        )
    )


class RecordingSleep:
    """Records the waits asked for (so tests check backoff and Retry-After without clocks)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        import asyncio

        self.waits.append(seconds)
        await asyncio.sleep(0)


def caller_for(registry: Registry) -> tuple[FailoverCaller, RecordingSleep]:
    sleep = RecordingSleep()
    return FailoverCaller(registry, sleep=sleep), sleep
