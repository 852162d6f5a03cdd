"""The response cache, measured: exact-hit latency, semantic lookup cost, and the precision
and hit rate of the semantic cache on a banking77 FAQ stream.

    python benchmarks/cache.py [--quick] [--skip-latency] [--skip-semantic] [--skip-faq]
        [--requests 1000 --rounds 3] [--sizes 10000 100000 --queries 500]

* latency: the scripted upstream alone (direct) and the gateway in front of it answering an
  exact hit, sequential keep-alive requests; p50/p99 and the gateway's added time. Both
  servers run in this process (threads), each request from an httpx keep-alive client.
* semantic lookup: 10k and 100k entries in one group (banking77's train messages, then
  word-level variants of them), added 1,000 at a time so the index grows as in a gateway
  (exact below 8,192 entries, then IVF trained and retrained on them); each test-split
  message embedded by the static model2vec embedder and searched for its 8 nearest (what a
  lookup with the ambiguity check asks), one thread (faiss and the embedder), embedding and
  search timed apart and together; recall@1 against an exact search of the same vectors,
  overall and among would-be hits.
* FAQ stream: banking77, an answer per intent; each message looks up the cache (earlier
  messages of the stream), a hit is right when its intent matches, a miss is stored
  (`cache.replay`). Threshold, and margin with the ambiguity check, are calibrated as
  `smallfirst cache calibrate` does on a labelled stream (replayed as the cache would, the
  one-sided 95% Wilson bound at --target), on the train split cut into streams as long as the
  test split's, and measured on the test split's stream: the check off and on in one table,
  beside a fixed 0.9.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from smallfirst.cache.ambiguity import MARGINS, NEIGHBOURS
from smallfirst.cache.replay import StreamCalibration, calibrate_streams, replay
from smallfirst.evaluate.stats import wilson

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks" / "banking77"
BODY = {"model": "small", "messages": [{"role": "user", "content": "Opening hours?"}]}
BODY["temperature"] = 0


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def time_requests(url: str, count: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(20):
            client.post("/v1/chat/completions", json=BODY).raise_for_status()
        out = []
        for _ in range(count):
            start = time.perf_counter()
            response = client.post("/v1/chat/completions", json=BODY)
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return out


def latency(count: int, rounds: int) -> list[tuple[str, float, float]]:
    from smallfirst.config import CacheConfig, Config, ModelConfig
    from smallfirst.server import create_app
    from smallfirst.testing import BackgroundServer, ScriptedUpstream

    upstream = ScriptedUpstream()
    with BackgroundServer(upstream.app) as up:
        model = ModelConfig(name="small", backend="openai", base_url=up.url + "/v1")
        config = Config(models=[model], cache=CacheConfig(routes={"small": {}}))
        with BackgroundServer(create_app(config)) as gateway:
            direct: list[float] = []
            hits: list[float] = []
            for _ in range(rounds):  # interleaved, so noise hits both alike
                direct += time_requests(up.url, count)
                hits += time_requests(gateway.url, count)
    rows = [("direct upstream", percentile(direct, 50), percentile(direct, 99))]
    rows.append(("gateway, exact hit", percentile(hits, 50), percentile(hits, 99)))
    added = ("added by a hit", rows[1][1] - rows[0][1], rows[1][2] - rows[0][2])
    return [*rows, added]


@dataclass
class LookupRow:
    entries: int
    index: str
    fill_s: float
    embed_ms: float
    search_ms: float
    lookup_ms: float
    recall: float
    """recall@1: the approximate nearest is the exact nearest (by similarity, ties equal)."""
    hit_recall: float
    """The same among queries whose exact nearest is a hit (similarity >= the threshold)."""
    hits: int

    def cells(self) -> tuple:
        return (self.entries, self.index, self.fill_s, self.embed_ms, self.search_ms,
                self.lookup_ms, self.recall, self.hit_recall, self.hits)  # fmt: skip


def entry_texts(size: int, seed: int) -> list[str]:
    """banking77's train messages, then word-level variants of them (a word dropped, added
    or replaced) up to `size`: a cache's entries, near-duplicates included."""
    train = [text for text, _ in read_split("train", None, seed)]
    words = sorted({w for text in train for w in text.lower().split()})
    rng = random.Random(seed)
    texts = train[:size]
    while len(texts) < size:
        tokens = rng.choice(train).split()
        at, roll = rng.randrange(len(tokens)), rng.random()
        if roll < 0.3 and len(tokens) > 3:
            tokens.pop(at)
        elif roll < 0.6:
            tokens.insert(at, rng.choice(words))
        else:
            tokens[at] = rng.choice(words)
        texts.append(" ".join(tokens))
    return texts


def semantic_lookup(
    sizes: list[int], queries: int, embedder_path: str | None, threshold: float, seed: int,
    flat_up_to: int | None = None, batch: int = 1000,
) -> list[LookupRow]:  # fmt: skip
    """Per size: entries added `batch` at a time (the index grows, trains and retrains as
    in a gateway), then each test-split message embedded and searched, one thread; recall
    against an exact (flat) search of the same vectors."""
    import faiss

    from smallfirst.cache.semantic import SemanticIndex, static_embedder
    from smallfirst.cache.vector_index import FLAT_UP_TO

    faiss.omp_set_num_threads(1)
    embedder = static_embedder(embedder_path)
    texts = [text for text, _ in read_split("test", queries, seed)]
    all_vectors = np.ascontiguousarray(embedder.encode(entry_texts(max(sizes), seed)))
    out = []
    for size in sizes:
        index = SemanticIndex(embedder, flat_up_to or FLAT_UP_TO)
        group, vectors = f"bench-{size}", all_vectors[:size]
        start = time.perf_counter()
        for at in range(0, size, batch):
            keys = [f"k{i}" for i in range(at, min(at + batch, size))]
            index.add_many(group, vectors[at : at + batch], keys)
            index.wait()
        fill_s = time.perf_counter() - start
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        embed_ms, search_ms, found = [], [], []
        for text in texts:
            t0 = time.perf_counter()
            vector = index.embed(text)
            t1 = time.perf_counter()
            nearest = index.neighbours(group, vector, NEIGHBOURS)[:1]
            found.append((nearest[0].key, nearest[0].similarity) if nearest else None)
            t2 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
        best, _ = exact.search(embedder.encode(texts).astype(np.float32), 1)
        same = [f is not None and f[1] >= b - 1e-5 for f, b in zip(found, best[:, 0], strict=True)]
        hit = best[:, 0] >= threshold
        total = [a + b for a, b in zip(embed_ms, search_ms, strict=True)]
        out.append(LookupRow(
            size, index.describe(group), fill_s, statistics.median(embed_ms),
            statistics.median(search_ms), statistics.median(total), float(np.mean(same)),
            float(np.mean(np.array(same)[hit])) if hit.any() else float("nan"), int(hit.sum()),
        ))  # fmt: skip
    return out


def read_split(split: str, limit: int | None, seed: int) -> list[tuple[str, str]]:
    with (DATA / f"{split}.csv").open(encoding="utf-8") as handle:
        rows = [(row["text"], row["category"]) for row in csv.DictReader(handle)]
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


def faq(
    train_limit: int | None, test_limit: int | None, target: float, seed: int,
    embedder_path: str | None,
) -> tuple[list[tuple[str, StreamCalibration]], list[tuple]]:  # fmt: skip
    """Calibrated with the ambiguity check off and on (margin chosen), each measured on the
    test stream, and a fixed 0.9 without the check."""
    import faiss

    from smallfirst.cache.semantic import static_embedder

    faiss.omp_set_num_threads(1)
    embedder = static_embedder(embedder_path)
    train, test = read_split("train", train_limit, seed), read_split("test", test_limit, seed)
    train_vectors = embedder.encode([t for t, _ in train])
    test_vectors = embedder.encode([t for t, _ in test])
    streams = []  # streams as long as the measured one: a longer stream finds nearer pairs
    for start in range(0, len(train), len(test)):
        piece = slice(start, start + len(test))
        streams.append((train_vectors[piece], [y for _, y in train[piece]]))
    calibrated = [
        ("check off", calibrate_streams(streams, target, (None,))),
        ("check on", calibrate_streams(streams, target, MARGINS)),
    ]
    rules: list[tuple[str, float | None, float | None]] = [
        (name, found.calibration.threshold if found.calibration.achievable else None, found.margin)
        for name, found in calibrated
    ]
    rows: list[tuple[Any, ...]] = []
    for name, threshold, margin in [*rules, ("fixed 0.9, check off", 0.9, None)]:
        if threshold is None:
            rows.append((name, "-", "none reaches the target", 0.0, "-", "-", "-", 0))
            continue
        found = replay(test_vectors, [y for _, y in test], threshold, margin)
        low, high = wilson(found.right, found.hits) if found.hits else (0.0, 1.0)
        precision = found.right / found.hits if found.hits else float("nan")
        shown = "-" if margin is None else margin
        rows.append((name, shown, threshold, found.hits / found.messages, precision, low, high,
                     found.hits))  # fmt: skip
    return calibrated, rows


def print_table(title: str, header: list[str], rows: list[tuple]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-semantic", action="store_true")
    parser.add_argument("--skip-faq", action="store_true")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", help="a model2vec model folder (default: the distilled one)")
    parser.add_argument("--requests", type=int, default=1000, help="exact hits per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="semantic entries per measured index")  # fmt: skip
    parser.add_argument("--queries", type=int, default=500, help="semantic lookups per size")
    parser.add_argument("--hit-threshold", type=float, default=0.9,
                        help="a query whose exact nearest is this close is a hit")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    if not args.skip_latency:
        count, rounds = (30, 1) if quick else (args.requests, args.rounds)
        print_table(f"Exact hit latency ({count * rounds} requests each, ms)",
                    ["path", "p50", "p99"], latency(count, rounds))  # fmt: skip
    if not args.skip_semantic:
        sizes = [1_000] if quick else args.sizes
        rows = semantic_lookup(sizes, 20 if quick else args.queries, args.embedder,
                               args.hit_threshold, args.seed, 500 if quick else None)  # fmt: skip
        print_table(f"Semantic lookup, one thread (p50; hits: exact nearest >= "
                    f"{args.hit_threshold})",
                    ["entries", "index", "fill s", "embed ms", "search ms", "lookup ms",
                     "recall@1", "recall@1 of hits", "hits"],
                    [row.cells() for row in rows])  # fmt: skip
    if not args.skip_faq:
        limits = (400, 200) if quick else (None, None)
        calibrated, faq_rows = faq(limits[0], limits[1], args.target, args.seed, args.embedder)
        for name, found in calibrated:
            c, margin = found.calibration, found.margin or "none"
            print(f"\n{name}: calibrated on {found.lookups} train-stream lookups (target "
                  f"{args.target}): " + (f"threshold {c.threshold:.4f}, margin {margin}, "
                  f"{c.kept_n} train hits, lower bound {c.lower_bound:.3f}" if c.achievable
                  else "no threshold reaches it"))  # fmt: skip
        print_table("banking77 FAQ stream (test split)",
                    ["rule", "margin", "threshold", "hit rate", "precision", "95% low",
                     "95% high", "hits"], faq_rows)  # fmt: skip


if __name__ == "__main__":
    main()
