"""The example document pipeline over QMSum validation meetings: does every document finish?

Small steps run on the embedded Gemma 3 270M; the large tier is a scripted stand-in (a local
OpenAI-compatible server, `stand_in_app`) that answers every extract call with a schema-valid
object of empty lists and every other call with the first 40 words of the text it was given
(a lead baseline), billed at gpt-4o list prices ($2.50 / $10 per Mtok) on ~4 characters a
token. So escalations cost what the real large model would, and the summary quality printed is
the small model's (with lead-40 standing in for escalated pieces), not gpt-4o's.

    python benchmarks/pipeline_qmsum.py [--limit N] [--max-chars C] [--json out.json]

Prints completion rate, share of steps kept on the small model, time per document, $ against
sending each whole document to the large model, and ROUGE-L (LCS F-measure on lower-cased
words) of the summary step against the meeting's general summary, with a bootstrap 95%
interval and N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smallfirst.config import parse_config
from smallfirst.models.registry import Registry
from smallfirst.pipeline import Pipeline, PipelineResult
from smallfirst.testing import BackgroundServer
from smallfirst.types import Usage

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tasks" / "qmsum" / "val.jsonl"
PIPELINE = ROOT / "examples" / "pipelines" / "document_analysis.yaml"
LARGE_PRICE = {"input": 2.5, "output": 10.0}
DEEP_ANALYSIS_TOKENS = 400
"""What the whole-document baseline is allowed to write (the example's deep analysis)."""
WORD = re.compile(r"\w+")


def stand_in_app() -> Starlette:
    """The large tier: schema-valid empty lists for extracts, the lead of the text otherwise."""

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        prompt = "\n".join(m["content"] for m in body["messages"])
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if schema is not None:
            text = json.dumps({key: [] for key in schema.get("required", [])})
        else:
            source = prompt.rsplit("Text:", 1)[-1]
            text = " ".join(source.split()[:40]) or "No content."
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4 + 1}
        return JSONResponse(
            {
                "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def registry_for(large_url: str, slots: int = 4) -> Registry:
    return Registry(
        parse_config(
            f"""
baseline_model: large
models:
  - {{name: gemma, backend: llamacpp, tier: small, context: 2048, slots: {slots}}}
  - {{name: large, backend: openai, base_url: "{large_url}", tier: large,
      price: {{input: {LARGE_PRICE["input"]}, output: {LARGE_PRICE["output"]}}}}}
"""
        )
    )


def load_meetings(
    path: Path, limit: int | None, max_chars: int | None, sample: int | None = None, seed: int = 0
) -> list[dict[str, str]]:
    """The first `limit` meetings, or `sample` of them drawn at random with `seed`."""
    lines = path.read_text().splitlines()
    if sample is not None:
        lines = random.Random(seed).sample(lines, min(sample, len(lines)))
    meetings = []
    for line in lines[:limit]:
        row = json.loads(line)
        doc = "\n".join(f"{t['speaker']}: {t['content']}" for t in row["meeting_transcripts"])
        meetings.append(
            {"document": doc[:max_chars] if max_chars else doc, "reference": general(row)}
        )
    return meetings


def general(row: dict[str, Any]) -> str:
    """The answer to the general query that asks for a summary (else the first general one)."""
    queries = row["general_query_list"]
    asked = [q for q in queries if "summar" in q["query"].lower()]
    return (asked or queries)[0]["answer"]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common subsequence of lower-cased words."""
    a, b = WORD.findall(candidate.lower()), WORD.findall(reference.lower())
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for word in a:
        current = [0]
        for j, other in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[-1]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def bootstrap_interval(
    values: list[float], rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    rng = np.random.default_rng(seed)
    data = np.asarray(values)
    means = rng.choice(data, size=(rounds, len(data)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def document_row(result: PipelineResult, seconds: float, whole_doc_usd: float, ref: str) -> dict:
    ran = [s for s in result.steps.values() if s.status != "skipped"]
    small_steps = [s for s in ran if s.tries and s.tries[0].tier == "small"]
    tries = [t for s in ran for t in s.tries]
    return {
        "complete": all(s.status == "ok" for s in ran),
        "steps": len(small_steps),
        "kept_small": sum(s.kept_small for s in small_steps),
        "escalated_steps": [s.name for s in small_steps if s.escalated],
        "pieces": sum(1 for t in tries if t.tier == "small"),
        "pieces_escalated": sum(1 for t in tries if t.tier == "small" and t.outcome == "failed"),
        "cut_at_length": sum(1 for t in tries if t.finish_reason == "length"),
        "seconds": seconds,
        "cost_usd": result.cost_usd,
        "whole_doc_usd": whole_doc_usd,
        "rouge_l": rouge_l(result.steps["summary"].text, ref),
        "failed": {s.name: s.reason for s in ran if s.status != "ok"},
    }


def with_layout(pipeline: Pipeline, layout: str | None) -> Pipeline:
    """Every task step with `layout` instead of the file's (to measure the file's against it)."""
    if layout is not None:
        for task in pipeline.tasks.values():
            task.spec = task.spec.model_copy(update={"layout": layout})
    return pipeline


async def run(
    meetings: list[dict[str, str]], pipeline_path: Path, layout: str | None = None, slots: int = 4
) -> list[dict]:
    rows = []
    with BackgroundServer(stand_in_app()) as server:
        registry = registry_for(server.url + "/v1", slots)
        pipeline = with_layout(Pipeline.from_yaml(pipeline_path), layout)
        gemma, large = registry.provider("gemma"), registry.get("large")
        engine = registry.raw_provider("gemma")
        try:
            for i, meeting in enumerate(meetings, start=1):
                doc = meeting["document"]
                clock = time.perf_counter()
                read_before = _prompt_tokens_read(engine)
                result = await pipeline.run(doc, registry=registry)
                seconds = time.perf_counter() - clock
                whole = Usage(gemma.count_tokens_sync(doc), DEEP_ANALYSIS_TOKENS)  # type: ignore[attr-defined]
                row = document_row(result, seconds, large.price.cost(whole), meeting["reference"])
                row["prompt_tokens_read"] = _prompt_tokens_read(engine) - read_before
                rows.append(row)
                print(
                    f"[{i}/{len(meetings)}] {len(doc):,} chars  {seconds:.1f} s  "
                    f"complete={row['complete']}  kept small {row['kept_small']}/{row['steps']}  "
                    f"ROUGE-L {row['rouge_l']:.3f}",
                    flush=True,
                )
        finally:
            await registry.aclose()
    return rows


def _prompt_tokens_read(engine: Any) -> int:
    """Tokens the embedded engine has evaluated so far (prompts read and answers written)."""
    batching = getattr(engine, "_engine", None)
    return int(batching.evaluated) if batching is not None else 0


def report(rows: list[dict]) -> dict[str, Any]:
    scores = [r["rouge_l"] for r in rows]
    low, high = bootstrap_interval(scores)
    cost, whole = sum(r["cost_usd"] for r in rows), sum(r["whole_doc_usd"] for r in rows)
    summary = {
        "documents": len(rows),
        "completion_rate": sum(r["complete"] for r in rows) / len(rows),
        "steps_kept_small": sum(r["kept_small"] for r in rows)
        / max(sum(r["steps"] for r in rows), 1),
        "pieces_escalated": sum(r["pieces_escalated"] for r in rows)
        / max(sum(r["pieces"] for r in rows), 1),
        "seconds_per_document_mean": statistics.fmean(r["seconds"] for r in rows),
        "seconds_per_document_median": statistics.median(r["seconds"] for r in rows),
        "tokens_evaluated_per_document": statistics.fmean(r["prompt_tokens_read"] for r in rows),
        "pipeline_usd": cost,
        "whole_document_large_usd": whole,
        "rouge_l_mean": statistics.fmean(scores),
        "rouge_l_ci95": [low, high],
    }
    print(f"documents (N)             {summary['documents']}")
    print(f"completion rate           {summary['completion_rate']:.1%}")
    print(f"steps kept on small       {summary['steps_kept_small']:.1%} (of steps started small)")
    print(f"small pieces escalated    {summary['pieces_escalated']:.1%}")
    print(
        f"time per document         mean {summary['seconds_per_document_mean']:.1f} s, "
        f"median {summary['seconds_per_document_median']:.1f} s"
    )
    print(f"tokens evaluated / doc    {summary['tokens_evaluated_per_document']:,.0f}")
    print(f"$ pipeline                {cost:.6f}")
    print(f"$ whole document to large {whole:.6f}  ({cost / whole if whole else 0:.1%} of it)")
    print(
        f"summary ROUGE-L           {summary['rouge_l_mean']:.3f} "
        f"(95% bootstrap CI {low:.3f}-{high:.3f}, N={len(rows)})"
    )
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N meetings (all: 35)")
    parser.add_argument("--max-chars", type=int, default=None, help="truncate each meeting")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pipeline", type=Path, default=PIPELINE)
    parser.add_argument("--json", type=Path, default=None, help="write rows and summary here")
    parser.add_argument(
        "--layout",
        choices=["instruction_first", "input_first"],
        default=None,
        help="every task step with this prompt layout (default: as the pipeline file says)",
    )
    parser.add_argument("--slots", type=int, default=4, help="the embedded model's slots")
    parser.add_argument("--sample", type=int, default=None, help="N meetings drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="the draw's seed (with --sample)")
    args = parser.parse_args(argv)
    meetings = load_meetings(args.data, args.limit, args.max_chars, args.sample, args.seed)
    rows = asyncio.run(run(meetings, args.pipeline, args.layout, args.slots))
    summary = report(rows)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "documents": rows}, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
