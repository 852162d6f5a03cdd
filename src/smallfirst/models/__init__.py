"""Model backends and the registry of configured models."""

from smallfirst.models.base import Provider, StreamingProvider, collect
from smallfirst.models.pricing import ModelPrice, price_of
from smallfirst.models.registry import Registry, register_backend

__all__ = [
    "ModelPrice",
    "Provider",
    "Registry",
    "StreamingProvider",
    "collect",
    "price_of",
    "register_backend",
]
