"""A real gateway in front of a real scripted upstream, for the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
from starlette.applications import Starlette

from smallfirst.config import Config, FailoverConfig, ModelConfig, Price
from smallfirst.ledger import ApiKey, Ledger
from smallfirst.server import Gateway, create_app
from smallfirst.testing import BackgroundServer

SMALL_PRICE = Price(input=1.0, output=2.0)
LARGE_PRICE = Price(input=10.0, output=30.0)


ONE_ATTEMPT = FailoverConfig(retries=0, fallbacks={"small": [], "large": []})
"""These tests check what one failure becomes; retries and fallbacks are tested in
tests/hardening/test_resilience_paths.py and test_faults.py."""


def scripted_config(base_url: str, **server: Any) -> Config:
    """Two models on the scripted upstream: a cheap small one and a pricey large baseline,
    each tried once (`ONE_ATTEMPT`)."""
    return Config(
        failover=ONE_ATTEMPT,
        models=[
            ModelConfig(
                name="small",
                backend="openai",
                base_url=base_url,
                upstream_model="up-small",
                tier="small",
                price=SMALL_PRICE,
                timeout_s=2.0,
            ),
            ModelConfig(
                name="large",
                backend="openai",
                base_url=base_url,
                upstream_model="up-large",
                tier="large",
                price=LARGE_PRICE,
                timeout_s=2.0,
            ),
        ],
        server=server,
    )


@dataclass
class RunningGateway:
    app: Starlette
    server: BackgroundServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def gateway(self) -> Gateway:
        return self.app.state.gateway

    @property
    def ledger(self) -> Ledger:
        ledger = self.gateway.ledger
        assert ledger is not None
        return ledger

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Ledger rows after a flush: everything recorded so far."""
        self.ledger.flush()
        return self.ledger.store.rows(**filters)

    def create_key(self, name: str, **limits: Any) -> tuple[ApiKey, str]:
        """A new key the running gateway accepts from the next request on."""
        key, secret = self.ledger.keys.create(name, **limits)
        self.gateway.auth.invalidate()
        return key, secret

    def client(self, api_key: str = "unused", **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, **options)

    def async_client(self, api_key: str = "unused") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0)


@contextmanager
def running_gateway(config: Config, **options: Any) -> Iterator[RunningGateway]:
    app = create_app(config, **options)
    with BackgroundServer(app) as server:
        yield RunningGateway(app, server)
