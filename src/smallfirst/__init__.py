"""smallfirst: run LLM traffic on the smallest model that works.

Public names are re-exported here; submodules are internals that may change.
Nothing is loaded or read at import time.
"""

from smallfirst.config import Config, ModelConfig, load_config
from smallfirst.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    ContextLengthError,
    InvalidRequestError,
    ModelLoadError,
    ModelNotFoundError,
    RateLimitError,
    SmallfirstError,
    UpstreamError,
    UpstreamTimeoutError,
)
from smallfirst.models import Provider, Registry, register_backend
from smallfirst.tasks import Task, TaskOutputError
from smallfirst.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    Generation,
    GenerationParams,
    Message,
    Usage,
)

__version__ = "0.1.0"

_LAZY = {
    "AsyncClient": "smallfirst.client",
    "Client": "smallfirst.client",
    "Answer": "smallfirst.target",
    "Target": "smallfirst.target",
    "Targets": "smallfirst.target",
}
"""Imported on first use: the client pulls in the gateway's modules (ledger, server)."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smallfirst' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Answer",
    "AsyncClient",
    "AuthenticationError",
    "BudgetExceededError",
    "ChatRequest",
    "Client",
    "CompletionRequest",
    "Config",
    "ConfigError",
    "ContextLengthError",
    "Delta",
    "Generation",
    "GenerationParams",
    "InvalidRequestError",
    "Message",
    "ModelConfig",
    "ModelLoadError",
    "ModelNotFoundError",
    "Provider",
    "RateLimitError",
    "Registry",
    "SmallfirstError",
    "Target",
    "Targets",
    "Task",
    "TaskOutputError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "Usage",
    "load_config",
    "register_backend",
]
