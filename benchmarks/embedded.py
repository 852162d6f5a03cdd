"""The embedded model at volume, in one run: batched decoding and prefix reuse against the
baselines (issue 21). Prints one table per part and writes nothing else.

1. llama-cpp-python called directly, at every thread count: the fastest is the baseline. It
   and smallfirst's one stream then take turns for `--rounds` rounds over the same prompts,
   and the medians are compared: on a shared machine the speed drifts by a third between
   minutes, and a baseline measured once at the start would compare two different machines.
2. Aggregate tokens/s and p50/p95 time to first token at 1, 4 and 8 concurrent streams of 128
   new tokens: smallfirst in-process, smallfirst through the gateway (`smallfirst serve` in its
   own process, HTTP, streaming), and llama.cpp's own llama-server (built from
   llama-cpp-python 0.3.36's vendored llama.cpp, see llama_server.py; `--parallel 8
   --cont-batching`, same model and threads).
3. Items/s of banking77 classification (77 labels, 4 nearest train examples by word overlap)
   at 1 and 8 concurrent: this engine, with the label written under a grammar and as one of
   `choices` (what tasks send now), against the engine of commit BASE_COMMIT (the one-worker
   engine, grammar), run from `git archive` in a temporary folder; the two engines also take
   turns for `--rounds` rounds, medians compared.
    python benchmarks/embedded.py            # the full run (minutes)
    python benchmarks/embedded.py --quick    # tiny sizes, no llama-server unless built
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from smallfirst.config import ModelConfig
from smallfirst.models.llamacpp import LlamaCppProvider, default_model_path, no_weight_repacking
from smallfirst.types import CompletionRequest, GenerationParams

ROOT = Path(__file__).resolve().parents[1]
BASE_COMMIT = "997863e"
BANKING = ROOT.parent / "shared" / "data" / "tasks" / "banking77"
PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain why the sky is blue.",
    "List some uses of a paperclip.",
    "Describe a walk in the mountains.",
]


@dataclass
class Load:
    """What `streams` concurrent generations gave: tokens/s in aggregate and TTFTs."""

    engine: str
    streams: int
    tokens: int
    seconds: float
    ttfts: list[float]

    def row(self) -> str:
        ttft = sorted(self.ttfts)
        p95 = ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))]
        return (
            f"{self.engine:<26}{self.streams:>8}{self.tokens / self.seconds:>12.1f}"
            f"{statistics.median(ttft) * 1000:>12.0f}{p95 * 1000:>12.0f}"
        )


SINGLE_STREAM_PROMPTS = PROMPTS[:2]
"""What one stream generates, one prompt after the other, in the paired comparison."""


def direct_tokens_per_second(threads: int, max_tokens: int) -> float:
    from llama_cpp import Llama

    with no_weight_repacking():
        llama = Llama(
            model_path=str(default_model_path()), n_ctx=2048, n_threads=threads, verbose=False
        )
    produced, started = 0, time.perf_counter()
    for prompt in SINGLE_STREAM_PROMPTS:
        for _ in llama.create_completion(
            prompt, max_tokens=max_tokens, temperature=0.0, stream=True
        ):
            produced += 1
    llama.close()
    return produced / (time.perf_counter() - started)


async def in_process(provider: LlamaCppProvider, streams: int, max_tokens: int) -> Load:
    async def one(i: int) -> tuple[int, float]:
        started, first, produced = time.perf_counter(), None, 0
        request = CompletionRequest(
            PROMPTS[i % len(PROMPTS)], GenerationParams(max_tokens=max_tokens, temperature=0.0)
        )
        async for delta in provider.stream_complete(request):
            if delta.text and first is None:
                first = time.perf_counter() - started
            if delta.usage is not None:
                produced = delta.usage.output_tokens
        return produced, first or time.perf_counter() - started

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(streams)))
    seconds = time.perf_counter() - started
    return Load(
        "smallfirst in-process",
        streams,
        sum(r[0] for r in results),
        seconds,
        [r[1] for r in results],
    )


async def one_stream_tokens_per_second(provider: LlamaCppProvider, max_tokens: int) -> float:
    """Tokens/s of one stream through the provider over the direct baseline's prompts."""
    produced, started = 0, time.perf_counter()
    for prompt in SINGLE_STREAM_PROMPTS:
        request = CompletionRequest(
            prompt, GenerationParams(max_tokens=max_tokens, temperature=0.0)
        )
        async for delta in provider.stream_complete(request):
            if delta.usage is not None:
                produced += delta.usage.output_tokens
    return produced / (time.perf_counter() - started)


@dataclass
class Paired:
    """Alternating rounds of a baseline and ours: each side's rates, in round order."""

    baseline: list[float]
    ours: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.baseline)

    def rounds(self) -> str:
        return ", ".join(f"{o / b:.2f}" for b, o in zip(self.baseline, self.ours, strict=True))


async def paired_single_stream(
    provider: LlamaCppProvider, threads: int, max_tokens: int, rounds: int
) -> Paired:
    """llama-cpp-python at `threads` and one stream of ours, taking turns."""
    paired = Paired([], [])
    for _ in range(rounds):
        paired.baseline.append(direct_tokens_per_second(threads, max_tokens))
        paired.ours.append(await one_stream_tokens_per_second(provider, max_tokens))
    return paired


async def over_http(name: str, url: str, model: str, streams: int, max_tokens: int) -> Load:
    """Streams of /v1/completions; tokens counted from the usage or from the chunks."""

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, float]:
        body = {
            "model": model,
            "prompt": PROMPTS[i % len(PROMPTS)],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        started, first, chunks, usage = time.perf_counter(), None, 0, None
        async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    usage = event["usage"]["completion_tokens"]
                if event.get("choices") and event["choices"][0].get("text"):
                    chunks += 1
                    first = first or time.perf_counter() - started
        return (usage or chunks), first or time.perf_counter() - started

    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(one(client, i) for i in range(streams)))
        seconds = time.perf_counter() - started
    return Load(name, streams, sum(r[0] for r in results), seconds, [r[1] for r in results])


# -- classification ---------------------------------------------------------------------------
def banking_prompts(n: int, shots: int = 4) -> tuple[list[str], list[str]]:
    """Fixed part first (instructions, the 77 labels), then the nearest examples and the input."""
    labels = json.loads((BANKING / "categories.json").read_text())
    with (BANKING / "train.csv").open(encoding="utf-8") as handle:
        bank = [(row["text"], row["category"]) for row in csv.DictReader(handle)][::20]
    with (BANKING / "test.csv").open(encoding="utf-8") as handle:
        tests = [row["text"] for row in csv.DictReader(handle)][:n]
    head = "Classify the banking message into one of these intents:\n" + "\n".join(labels) + "\n\n"

    def nearest(text: str) -> list[tuple[str, str]]:
        words = set(text.lower().split())
        return sorted(bank, key=lambda ex: -len(words & set(ex[0].lower().split())))[:shots]

    prompts = []
    for text in tests:
        shown = "".join(f"Message: {t}\nIntent: {y}\n\n" for t, y in nearest(text))
        prompts.append(f"{head}{shown}Message: {text}\nIntent:")
    return prompts, [f" {label}" for label in labels]


def label_grammar(labels: list[str]) -> str:
    """GBNF: exactly one of the labels (each given with its leading space)."""
    return "root ::= " + " | ".join(json.dumps(label) for label in labels)


async def classify(provider: LlamaCppProvider, prompt: str, labels: list[str], method: str) -> str:
    """One item: the label with the highest likelihood (`score`); the label the model writes
    under a grammar that admits only labels (`grammar`, what the tasks sent before); or the
    label written as one of `choices`, with logprobs for the confidence (`choices`, what the
    tasks send now, absent at BASE_COMMIT)."""
    if method == "score":
        scores = await provider.score_continuations(prompt, labels)
        return labels[max(range(len(labels)), key=scores.__getitem__)].strip()
    if method == "choices":
        params = GenerationParams(max_tokens=24, temperature=0.0, logprobs=True, choices=labels)
    else:
        params = GenerationParams(max_tokens=24, temperature=0.0, grammar=label_grammar(labels))
    return (await provider.complete(CompletionRequest(prompt, params))).text.strip()


async def items_per_second(
    provider: LlamaCppProvider,
    prompts: list[str],
    labels: list[str],
    concurrency: int,
    method: str,
) -> tuple[float, list[str]]:
    """Items/s at `concurrency` workers, and the answers in prompt order."""
    queue = list(enumerate(prompts))
    answers = [""] * len(prompts)

    async def worker() -> None:
        while queue:
            index, prompt = queue.pop()
            answers[index] = await classify(provider, prompt, labels, method)

    await classify(provider, prompts[0], labels, method)  # warm: weights and the fixed prefix
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(prompts) / (time.perf_counter() - started), answers


def banking_gold(n: int) -> list[str]:
    with (BANKING / "test.csv").open(encoding="utf-8") as handle:
        return [row["category"] for row in csv.DictReader(handle)][:n]


async def classification_rates(
    items: int, threads: int, method: str
) -> dict[int, tuple[float, list[str]]]:
    prompts, labels = banking_prompts(items)
    rates = {}
    for concurrency in (1, 8):
        config = ModelConfig(name="bench", backend="llamacpp", threads=threads, slots=concurrency)
        provider = LlamaCppProvider(config)
        rates[concurrency] = await items_per_second(provider, prompts, labels, concurrency, method)
        await provider.aclose()
    return rates


def base_engine_rates(items: int, threads: int, method: str) -> dict[int, list]:
    """The same measurement run on the source of BASE_COMMIT (slots and its threads unknown
    there: it gets `threads` through the config it already had)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BASE_COMMIT, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        script = (
            "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import embedded as b\n"
            "from smallfirst.models.llamacpp import LlamaCppProvider as P\n"
            "from smallfirst.config import ModelConfig as M\n"
            "p, l = b.banking_prompts(int(sys.argv[2]))\n"
            "m = lambda: P(M(name='base', backend='llamacpp', threads=int(sys.argv[3])))\n"
            "r = {c: asyncio.run(b.items_per_second(m(), p, l, c, sys.argv[4])) for c in (1, 8)}\n"
            "print(json.dumps(r))"
        )
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                str(ROOT / "benchmarks"),
                str(items),
                str(threads),
                method,
            ],
            env={"PYTHONPATH": str(Path(folder) / "src"), "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--classify",
        choices=("generate", "score", "both"),
        default="generate",
        help="banking77 by the tasks' default (the label written: under a grammar, and as "
        "one of `choices`) and/or by scoring every label (~10 s an item here)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of each baseline and ours (medians compared)",
    )
    args = parser.parse_args()
    rounds = 1 if args.quick else max(1, args.rounds)
    max_tokens = 8 if args.quick else 128
    levels = (1, 2) if args.quick else (1, 4, 8)
    items = 3 if args.quick else 40

    from smallfirst.models.llamacpp_engine import default_threads  # absent at BASE_COMMIT

    cores = default_threads()
    sweep = {t: direct_tokens_per_second(t, max_tokens) for t in range(1, cores + 1)}
    best = max(sweep, key=sweep.__getitem__)
    print(f"llama-cpp-python direct, {max_tokens} new tokens, greedy")
    print(f"{'threads':>8}{'tok/s':>10}")
    for threads, rate in sweep.items():
        print(f"{threads:>8}{rate:>10.1f}{'  <- best' if threads == best else ''}")

    loads: list[Load] = []
    provider = LlamaCppProvider(
        ModelConfig(name="bench", backend="llamacpp", threads=best, slots=max(levels))
    )
    await provider.load()
    single = await paired_single_stream(provider, best, max_tokens, rounds)
    for streams in levels:
        loads.append(await in_process(provider, streams, max_tokens))
    await provider.aclose()
    prompts = len(SINGLE_STREAM_PROMPTS)
    print(f"\none stream, {prompts} prompts in turn, {rounds} alternating rounds")
    print(f"{'round':>8}{'direct tok/s':>14}{'ours tok/s':>12}{'ratio':>8}")
    for index, (direct, ours) in enumerate(zip(single.baseline, single.ours, strict=True)):
        print(f"{index + 1:>8}{direct:>14.1f}{ours:>12.1f}{ours / direct:>8.2f}")
    print(f"{'median':>8}{statistics.median(single.baseline):>14.1f}"
          f"{statistics.median(single.ours):>12.1f}{single.ratio:>8.2f}")  # fmt: skip
    loads += await gateway_loads(best, levels, max_tokens)
    loads += await llama_server_loads(best, levels, max_tokens, build=not args.quick)
    print(f"\nconcurrent streams of {max_tokens} new tokens (aggregate)")
    print(f"{'engine':<26}{'streams':>8}{'tok/s':>12}{'TTFT p50':>12}{'TTFT p95':>12}")
    for load in loads:
        print(load.row())

    gold = banking_gold(items)
    if args.classify in ("generate", "both"):
        runs: list[dict[str, dict[int, tuple[float, list[str]]]]] = []
        for _ in range(rounds):
            run = {"base": base_engine_rates(items, best, "grammar")}
            for method in ("grammar", "choices"):
                run[method] = await classification_rates(items, best, method)
            runs.append(run)
        print(f"\nbanking77 classification, {items} items, 4 examples each, {rounds} "
              "alternating rounds: median items/s (accuracy of round 1)")  # fmt: skip
        print(f"{'concurrency':>12}{'base grammar':>16}{'ours grammar':>16}{'ours choices':>16}"
              f"{'ratio':>8}  per round")  # fmt: skip
        for c in (1, 8):
            shown = "".join(
                f"{statistics.median(run[side][c][0] for run in runs):>8.2f} "
                f"({accuracy(runs[0][side][c][1], gold):.3f})"
                for side in ("base", "grammar", "choices")
            )
            paired = Paired([r["base"][c][0] for r in runs], [r["choices"][c][0] for r in runs])
            print(f"{c:>12}{shown}{paired.ratio:>8.2f}  {paired.rounds()}")
    if args.classify in ("score", "both"):
        base = base_engine_rates(items, best, "score")
        scored = await classification_rates(items, best, "score")
        print(f"\nbanking77 classification (score), {items} items, 4 examples each")
        print(f"{'concurrency':>12}{'base items/s':>14}{'ours items/s':>14}{'ratio':>8}"
              f"{'base acc':>10}{'ours acc':>10}")  # fmt: skip
        for concurrency in (1, 8):
            (old, old_answers), (new, new_answers) = base[concurrency], scored[concurrency]
            print(
                f"{concurrency:>12}{old:>14.2f}{new:>14.2f}{new / old:>8.2f}"
                f"{accuracy(old_answers, gold):>10.3f}{accuracy(new_answers, gold):>10.3f}"
            )


def accuracy(answers: list[str], gold: list[str]) -> float:
    return sum(a == g for a, g in zip(answers, gold, strict=True)) / len(gold)


async def gateway_loads(threads: int, levels: tuple[int, ...], max_tokens: int) -> list[Load]:
    """`smallfirst serve` in its own process, as `make run` starts it (llama-server is a process
    of its own too: a gateway in this one would share its interpreter with the client)."""
    from smallfirst.testing.processes import gateway_process

    model = {"name": "gemma", "backend": "llamacpp", "threads": threads, "slots": max(levels)}
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        config = workdir / "smallfirst.yaml"
        config.write_text(yaml.safe_dump({"models": [model], "default_model": "gemma"}))
        server = gateway_process(workdir, config).start("/v1/models")
        try:
            await over_http("warm-up", server.url, "gemma", 1, 2)
            return [
                await over_http("smallfirst gateway", server.url, "gemma", s, max_tokens)
                for s in levels
            ]
        finally:
            server.stop()


async def llama_server_loads(
    threads: int, levels: tuple[int, ...], max_tokens: int, build: bool
) -> list[Load]:
    import llama_server

    if not build and not llama_server.BINARY.exists():
        print("(llama-server not built: skipped; `python benchmarks/llama_server.py` builds it)")
        return []
    with llama_server.running(default_model_path(), 8099, max(levels), threads, 2048) as url:
        await over_http("warm-up", url, "gemma", 1, 2)
        return [await over_http("llama-server", url, "gemma", s, max_tokens) for s in levels]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    asyncio.run(main())
