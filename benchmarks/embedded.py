"""Embedded backend vs llama-cpp-python called directly: same model, same prompts, same run.

Prints tokens/s and time-to-first-token for both and the ratio (target >= 0.95).
    python benchmarks/embedded.py [--runs 5] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from smallfirst.config import Config
from smallfirst.models.registry import Registry
from smallfirst.types import CompletionRequest, GenerationParams

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain why the sky is blue.",
    "List some uses of a paperclip.",
]


def raw_llama_run(llama, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    produced = 0
    for chunk in llama.create_completion(
        prompt, max_tokens=max_tokens, temperature=0.0, stream=True
    ):
        if chunk["choices"][0]["text"] and first is None:
            first = time.perf_counter() - started
        produced += 1
    total = time.perf_counter() - started
    return first or total, total, produced


async def ours_run(provider, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    produced = 0
    request = CompletionRequest(prompt, GenerationParams(max_tokens=max_tokens, temperature=0.0))
    async for delta in provider.stream_complete(request):
        if delta.text and first is None:
            first = time.perf_counter() - started
        if delta.usage is not None:
            produced = delta.usage.output_tokens
    total = time.perf_counter() - started
    return first or total, total, produced


def summarize(rows: list[tuple[float, float, int]]) -> tuple[float, float]:
    ttft = statistics.median(r[0] for r in rows)
    tps = sum(r[2] for r in rows) / sum(r[1] - r[0] for r in rows)  # decode speed after first token
    return ttft, tps


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    registry = Registry(Config())
    provider = registry.provider("default")
    await provider.load()
    from llama_cpp import Llama

    from smallfirst.models.llamacpp import default_model_path, no_weight_repacking

    with no_weight_repacking():  # the same load as ours: AMX repacking crashes decoding
        raw = Llama(model_path=str(default_model_path()), n_ctx=2048, n_batch=512, verbose=False)
    ours_rows, raw_rows = [], []
    for prompt in PROMPTS[:1]:  # warm both
        raw_llama_run(raw, prompt, 8)
        await ours_run(provider, prompt, 8)
    for _ in range(args.runs):
        for prompt in PROMPTS:  # interleave so machine noise hits both alike
            raw_rows.append(raw_llama_run(raw, prompt, args.max_tokens))
            ours_rows.append(await ours_run(provider, prompt, args.max_tokens))
    await registry.aclose()

    raw_ttft, raw_tps = summarize(raw_rows)
    our_ttft, our_tps = summarize(ours_rows)
    print(
        f"embedded backend vs llama-cpp-python direct ({len(ours_rows)} generations each, "
        f"max_tokens={args.max_tokens}, Gemma 3 270M Q4_K_M)"
    )
    print(f"{'engine':<28}{'decode tok/s':>14}{'TTFT p50 ms':>14}")
    print(f"{'llama-cpp-python direct':<28}{raw_tps:>14.1f}{raw_ttft * 1000:>14.1f}")
    print(f"{'smallfirst embedded':<28}{our_tps:>14.1f}{our_ttft * 1000:>14.1f}")
    print(f"{'ratio (ours / direct)':<28}{our_tps / raw_tps:>14.3f}{raw_ttft / our_ttft:>14.3f}")


if __name__ == "__main__":
    asyncio.run(main())
