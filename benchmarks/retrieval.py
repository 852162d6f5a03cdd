"""Retrieval on COVID-QA: does the knowledge base find the answer, how fast, and does it help
the embedded Gemma 3 270M answer?

The 98 COVID-QA articles become a knowledge base (the product path: chunks, MiniLM + faiss,
SQLite FTS5); the 1,380 questions are asked of it. Printed:

1. recall@k (k = 1, 3, 5, 10): a retrieved chunk contains the gold answer text (case and
   whitespace folded), for the knowledge base's three search modes (hybrid, dense MiniLM,
   keyword BM25), beside a TF-IDF retriever over the very same chunks (the baseline, measured
   in the same run) and the ceiling (answers that fit inside some chunk at all); query
   latency p50/p95 (embedding + search + chunk fetch).
2. On a fixed-seed sample: SQuAD exact match / token F1 of Gemma closed-book, with grounded
   retrieval (cite sources), and asked to copy the answer span (extractive), beside a
   no-LLM baseline that returns the retrieved sentence most similar to the question.

    nice python benchmarks/retrieval.py --qa-sample 100 --max-tokens 32
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tasks" / "covidqa"
KS = (1, 3, 5, 10)
QA_MODES = ("closed-book", "grounded", "extractive", "best-sentence")


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]
    doc: str


def load_covidqa(path: Path, articles: int | None = None) -> tuple[dict[str, str], list[Question]]:
    """(document id -> article text, questions) from the SQuAD-format file."""
    data = json.loads(path.read_text())["data"][:articles]
    docs: dict[str, str] = {}
    questions: list[Question] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            doc = str(paragraph["document_id"])
            docs[doc] = docs.get(doc, "") + paragraph["context"]
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa["answers"] if a["text"].strip())
                if answers:
                    questions.append(Question(qa["question"], answers, doc))
    return docs, questions


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def contains(text: str, answers: tuple[str, ...]) -> bool:
    folded = fold(text)
    return any(fold(a) in folded for a in answers)


@dataclass
class RetrievalRow:
    name: str
    hits: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    latencies: list[float] = field(default_factory=list)
    n: int = 0

    def recall(self, k: int) -> float:
        return self.hits[k] / max(self.n, 1)

    def pct(self, q: float) -> float:
        return 1000 * float(np.percentile(self.latencies, q)) if self.latencies else 0.0


def score_retriever(name: str, search, questions: list[Question]) -> RetrievalRow:
    """Recall@k and per-query latency of `search(query, k) -> list of chunk texts`."""
    row = RetrievalRow(name)
    for q in questions:
        started = time.perf_counter()
        texts = search(q.question, max(KS))
        row.latencies.append(time.perf_counter() - started)
        first = next((i for i, t in enumerate(texts) if contains(t, q.answers)), None)
        for k in KS:
            row.hits[k] += first is not None and first < k
        row.n += 1
    return row


class TfidfSearch:
    """The lexical baseline: TF-IDF cosine over the knowledge base's own chunks."""

    def __init__(self, texts: list[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.texts = texts
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
        self.matrix = self.vectorizer.fit_transform(texts)

    def __call__(self, query: str, k: int) -> list[str]:
        scores = (self.matrix @ self.vectorizer.transform([query]).T).toarray().ravel()
        return [self.texts[i] for i in np.argsort(-scores)[:k]]


def build_kb(docs: dict[str, str], chunk_chars: int, overlap: int):
    from smallfirst.retrieval import KnowledgeBase

    started = time.perf_counter()
    kb = KnowledgeBase.create("covidqa", chunk_chars, overlap)
    for doc, text in docs.items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        if kb.store.document_hash(f"covidqa/{doc}") != digest:  # --home: reuse what is built
            kb.add_text(f"covidqa/{doc}", text, digest, save=False)
    kb.index.save(kb.store.generation)
    return kb, time.perf_counter() - started


def retrieval_table(kb, questions: list[Question], modes: list[str]) -> list[RetrievalRow]:
    """Rows for the TF-IDF baseline and each knowledge base mode, printed as they finish."""
    chunks = kb.store.all_chunks()
    by_doc: dict[str, list[str]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.source.removeprefix("covidqa/"), []).append(chunk.text)
    ceiling = sum(any(contains(t, q.answers) for t in by_doc[q.doc]) for q in questions)
    print(f"\nretrieval over {len(chunks)} chunks, {len(questions)} questions")
    print(f"ceiling (gold answer inside some chunk of its article): {ceiling / len(questions):.3f}")
    print("| retriever | " + " | ".join(f"recall@{k}" for k in KS) + " | p50 ms | p95 ms |")
    print("|---|" + "---:|" * (len(KS) + 2), flush=True)
    tfidf = TfidfSearch([c.text for c in chunks])
    rows = [score_retriever("TF-IDF, sklearn (baseline)", tfidf, questions)]
    print_row(rows[-1])
    for mode in modes:
        search = lambda query, k, mode=mode: [c.text for c in kb.search(query, k, mode)]  # noqa: E731
        rows.append(score_retriever(f"smallfirst kb, {mode}", search, questions))
        print_row(rows[-1])
    return rows


def print_row(row: RetrievalRow) -> None:
    recalls = " | ".join(f"{row.recall(k):.3f}" for k in KS)
    print(f"| {row.name} | {recalls} | {row.pct(50):.1f} | {row.pct(95):.1f} |", flush=True)


def thread_latency(kb, questions: list[Question], counts: list[int]) -> dict[int, list[float]]:
    """Query latency (embed + search + fetch) per torch thread count, interleaved per query.

    On a busy machine, several torch threads embedding one short query wait on each other;
    this shows how much that costs here."""
    import torch

    before = torch.get_num_threads()
    latencies: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for q in questions:
            for n in counts:
                torch.set_num_threads(n)
                started = time.perf_counter()
                kb.search(q.question, max(KS), "dense")
                latencies[n].append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    return latencies


def print_thread_latency(latencies: dict[int, list[float]]) -> None:
    print("\nquery latency by torch threads (same queries, interleaved)")
    print("| torch threads | queries | p50 ms | p95 ms |")
    print("|---:|---:|---:|---:|")
    for n, values in latencies.items():
        p50, p95 = (1000 * float(np.percentile(values, q)) for q in (50, 95))
        print(f"| {n} | {len(values)} | {p50:.1f} | {p95:.1f} |")


@dataclass
class QARow:
    mode: str
    em: list[float] = field(default_factory=list)
    f1: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cited: int = 0
    cited_right: int = 0
    not_found: int = 0


def best_sentence(kb, question: str, k: int) -> str:
    """No LLM: the sentence of the top-k chunks most similar to the question (MiniLM)."""
    sentences = [
        s.strip()
        for chunk in kb.search(question, k)
        for s in re.split(r"(?<=[.!?])\s+", " ".join(chunk.text.split()))
        if len(s.strip()) > 10
    ]
    if not sentences:
        return ""
    vectors = kb.embedder.encode([question, *sentences])
    return sentences[int(np.argmax(vectors[1:] @ vectors[0]))]


async def answer_one(mode: str, q: Question, kb, registry, k: int, max_tokens: int, row: QARow):
    from smallfirst.retrieval import answer_with_kb
    from smallfirst.types import ChatRequest, GenerationParams, Message

    if mode == "best-sentence":
        return best_sentence(kb, q.question, k)
    if mode == "closed-book":
        params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
        request = ChatRequest([Message("user", q.question)], params)
        return (await registry.provider("default").chat(request)).text
    answer = await answer_with_kb(
        q.question, kb, registry, k=k, max_tokens=max_tokens, extractive=mode == "extractive"
    )
    row.cited += bool(answer.citations)
    row.cited_right += any(contains(c.text, q.answers) for c in answer.cited)
    row.not_found += answer.not_found
    return answer.plain_text


async def qa_table(kb, sample: list[Question], modes: list[str], k: int, max_tokens: int):
    from smallfirst.evaluate.metrics import exact_match, token_f1
    from smallfirst.models.registry import Registry

    registry = Registry()
    rows = {mode: QARow(mode) for mode in modes}
    try:
        for i, q in enumerate(sample):  # interleaved: machine noise hits every mode alike
            if i and i % 25 == 0:
                print_qa(list(rows.values()), k, max_tokens, partial=True)
            for mode in modes:
                started = time.perf_counter()
                text = await answer_one(mode, q, kb, registry, k, max_tokens, rows[mode])
                rows[mode].seconds.append(time.perf_counter() - started)
                rows[mode].em.append(exact_match(text, q.answers))
                rows[mode].f1.append(token_f1(text, q.answers))
    finally:
        await registry.aclose()
    return list(rows.values())


def print_qa(rows: list[QARow], k: int, max_tokens: int, partial: bool = False) -> None:
    n = len(rows[0].em)
    label = "(partial) " if partial else ""
    print(f"\n{label}question answering, {n} questions, k={k} chunks, max_tokens={max_tokens}")
    print(
        "| mode | EM | token F1 | cites a source | cited chunk has answer | says not found | s/q |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        llm = r.mode in ("grounded", "extractive")
        extra = (
            f"{r.cited / n:.2f} | {r.cited_right / n:.2f} | {r.not_found / n:.2f}"
            if llm
            else "- | - | -"
        )
        print(
            f"| {r.mode} | {statistics.mean(r.em):.3f} | {statistics.mean(r.f1):.3f} | "
            f"{extra} | {statistics.median(r.seconds):.2f} |",
            flush=True,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA / "200423_covidQA.json")
    parser.add_argument("--articles", type=int, default=None, help="first N articles only")
    parser.add_argument("--chunk-chars", type=int, default=800)
    parser.add_argument("--overlap", type=int, default=160)
    parser.add_argument(
        "--search-modes",
        nargs="+",
        default=["hybrid", "dense", "keyword"],
        choices=["hybrid", "dense", "keyword"],
    )
    parser.add_argument("--qa-sample", type=int, default=100, help="0 skips the QA part")
    parser.add_argument("--modes", nargs="+", default=list(QA_MODES), choices=QA_MODES)
    parser.add_argument("--k", type=int, default=3, help="chunks in the QA prompt")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, help="keep the built base here and reuse it")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="for embedding (indexing and queries)"
    )
    parser.add_argument(
        "--latency-queries", type=int, default=200, help="queries in the thread comparison"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch

    args = parse_args(argv)
    default_threads = torch.get_num_threads()
    saved_home = os.environ.get("SMALLFIRST_HOME")
    torch.set_num_threads(args.torch_threads)
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ["SMALLFIRST_HOME"] = str(args.home or home)
            run(args, default_threads)
    finally:
        torch.set_num_threads(default_threads)
        if saved_home is None:
            os.environ.pop("SMALLFIRST_HOME", None)
        else:
            os.environ["SMALLFIRST_HOME"] = saved_home


def run(args: argparse.Namespace, default_threads: int) -> None:
    docs, questions = load_covidqa(args.data, args.articles)
    kb, seconds = build_kb(docs, args.chunk_chars, args.overlap)
    n_chunks = kb.info().chunks
    print(
        f"torch threads {args.torch_threads} (machine default {default_threads}); "
        f"indexed {len(docs)} articles ({sum(map(len, docs.values())):,} chars) into "
        f"{n_chunks} chunks of <= {args.chunk_chars} chars (overlap {args.overlap}) "
        f"in {seconds:.1f} s"
    )
    retrieval_table(kb, questions, args.search_modes)
    if args.latency_queries:
        counts = sorted({args.torch_threads, default_threads})
        print_thread_latency(thread_latency(kb, questions[: args.latency_queries], counts))
    if args.qa_sample:
        sample = random.Random(args.seed).sample(questions, min(args.qa_sample, len(questions)))
        qa_rows = asyncio.run(qa_table(kb, sample, args.modes, args.k, args.max_tokens))
        print_qa(qa_rows, args.k, args.max_tokens)
    kb.close()


if __name__ == "__main__":
    main()
