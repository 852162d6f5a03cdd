"""The OpenAI-compatible gateway: `create_app()` returns the ASGI app `smallfirst serve` runs."""

from smallfirst.server.app import create_app
from smallfirst.server.gateway import Gateway

__all__ = ["Gateway", "create_app"]
