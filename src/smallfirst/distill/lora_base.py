"""The base model a LoRA adapter is trained on: a local GGUF, checked before any training.

The weights come from the GGUF llama.cpp serves (the packaged Gemma 3 270M by default), which
`transformers` dequantises to fp32 (`from_pretrained(dir, gguf_file=...)`). Nothing is ever
downloaded. Every check here runs on the file's metadata alone, in seconds, so a
bad base or too little memory is reported before the ~1 minute load and any training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from smallfirst.config import ModelConfig, load_config
from smallfirst.errors import InvalidRequestError
from smallfirst.models.llamacpp import close_at_exit, no_weight_repacking, resolve_model_path

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class BaseModel:
    """A local GGUF base: its file, architecture and the sizes the memory estimate needs."""

    name: str
    path: Path
    architecture: str
    parameters: int
    layers: int
    hidden: int
    feed_forward: int
    vocab: int


def resolve_base(name: str) -> BaseModel:
    """A configured llama.cpp model name (its GGUF, as the registry finds it) or a .gguf path."""
    path = _base_path(name)
    try:
        vocab = gguf_vocab(path)
    except (ValueError, RuntimeError) as exc:
        _check_transformers_support(name, _architecture(path))
        raise InvalidRequestError(f"base {name!r}: llama.cpp cannot read {path}: {exc}") from None
    meta = vocab.metadata
    arch = meta.get("general.architecture", "unknown")
    _check_transformers_support(name, arch)

    def number(key: str, default: int = 0) -> int:
        return int(meta.get(f"{arch}.{key}", default))

    hidden = number("embedding_length")
    heads = number("attention.head_count", 1)
    kv_heads = number("attention.head_count_kv", heads)
    head_dim = number("attention.key_length", hidden // heads)
    ffn, layers = number("feed_forward_length"), number("block_count")
    per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 3 * hidden * ffn
    parameters = vocab.n_vocab() * hidden + layers * per_layer
    return BaseModel(name, path, arch, parameters, layers, hidden, ffn, vocab.n_vocab())


def _architecture(path: Path) -> str:
    """The architecture of a GGUF llama.cpp cannot open (gguf's reader: slow on big files)."""
    import gguf

    try:
        field = gguf.GGUFReader(str(path)).fields.get("general.architecture")
    except (ValueError, OSError):
        return "unknown"
    return "unknown" if field is None else str(field.contents())


@lru_cache(maxsize=4)
def gguf_vocab(path: Path) -> Any:
    """llama.cpp with the vocabulary and metadata only (a few seconds; no weights): its
    tokenizer gives the exact token ids the served model sees."""
    from llama_cpp import Llama

    with no_weight_repacking():
        return close_at_exit(Llama(model_path=str(path), vocab_only=True, verbose=False))


def _base_path(name: str) -> Path:
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise InvalidRequestError(f"base {name!r}: no such GGUF file", param="base")
        return path
    models = {m.name: m for m in load_config().models}
    config = models.get(name)
    if config is None:
        known = [m.name for m in models.values() if m.backend == "llamacpp"]
        raise InvalidRequestError(
            f"base {name!r} is not a configured llama.cpp model "
            f"(configured: {', '.join(known) or 'none'}) nor a .gguf file; the base must be "
            "local: smallfirst never downloads weights",
            param="base",
        )
    if config.backend != "llamacpp":
        raise InvalidRequestError(
            f"base {name!r} is a {config.backend!r} model; a LoRA adapter needs the weights "
            "on this machine: pass a llama.cpp model or a local .gguf",
            param="base",
        )
    return local_gguf(config)


def local_gguf(config: ModelConfig) -> Path:
    """The GGUF file the embedded backend loads for this model (ModelLoadError if not local)."""
    from smallfirst.errors import ModelLoadError

    try:
        return resolve_model_path(config)
    except ModelLoadError as exc:
        raise InvalidRequestError(exc.message, param="base") from None


def _check_transformers_support(name: str, arch: str) -> None:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        supported = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a != "general")
        raise InvalidRequestError(
            f"base {name!r}: transformers cannot load GGUF architecture {arch!r} "
            f"(it loads: {supported}), so it cannot be fine-tuned here",
            param="base",
        )


def training_bytes(base: BaseModel, batch_size: int, max_tokens: int, answer_tokens: int) -> int:
    """A generous estimate of peak memory: fp32 weights (and the GGUF being dequantised beside
    them), activations kept for the backward pass, and logits over the answer positions only."""
    weights = base.parameters * 4 * 2
    per_token = base.layers * (base.hidden * 16 + base.feed_forward * 6) * 4
    activations = batch_size * max_tokens * per_token
    logits = batch_size * (answer_tokens + 1) * base.vocab * 4 * 3
    return weights + activations + logits + GIB // 2


def available_bytes() -> int:
    """Memory the kernel can hand out now (MemAvailable), or total memory where not Linux."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(needed: int, available: int, batch_size: int) -> None:
    if needed > available:
        raise InvalidRequestError(
            f"training needs about {needed / GIB:.1f} GiB of memory but {available / GIB:.1f} GiB "
            f"is available; lower --batch-size (now {batch_size}) or free memory",
            param="batch_size",
        )


def load_for_training(base: BaseModel, device: str) -> Any:
    """The base as an fp32 transformers model on `device` (about a minute for 270M on CPU)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(base.path.parent), gguf_file=base.path.name, dtype="float32"
        )
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise InvalidRequestError(
            f"base {base.name!r}: transformers could not load {base.path} "
            f"(architecture {base.architecture!r}): {exc}",
            param="base",
        ) from None
    # transformers declares `to` through functools.wraps: its type takes the model as the argument
    return model.to(device)  # type: ignore[arg-type]
