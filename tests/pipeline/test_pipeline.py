"""Pipelines against real local upstreams, on real documents where the shared data is present."""

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from smallfirst.config import FailoverConfig, parse_config
from smallfirst.ledger import Ledger
from smallfirst.models.registry import Registry
from smallfirst.pipeline import Pipeline, parse_pipeline
from smallfirst.testing import BackgroundServer, Script
from smallfirst.types import Usage
from tests.conftest import shared_data
from tests.pipeline.conftest import NOTES

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/pipelines/document_analysis.yaml"
FACTS = {
    "kind": "extract",
    "schema": {
        "type": "object",
        "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
        "required": ["facts"],
    },
}


def pipeline(*step_list):
    return Pipeline(parse_pipeline({"name": "t", "steps": list(step_list)}))


async def test_steps_chain_and_results_are_typed(two_tiers):
    registry, _small, large = two_tiers
    p = pipeline(
        {"name": "facts", "task": FACTS},
        {"name": "deep", "model": "large", "prompt": "Facts: {facts}. Analyse."},
    )
    result = await p.run("The board approved the budget.", registry=registry)
    facts, deep = result.steps["facts"], result.steps["deep"]
    assert facts.status == "ok" and facts.model == "small"
    assert facts.output["data"]["facts"] == ["budget approved"]
    assert deep.model == "large" and deep.text == "deep view"
    assert "budget approved" in large.received[-1]["messages"][0]["content"]
    assert result.cost_usd == facts.cost_usd + deep.cost_usd > 0
    assert deep.cost_usd > facts.cost_usd


async def test_run_if_skips_unless_the_document_needs_it(two_tiers):
    registry, _, large = two_tiers
    p = pipeline(
        {"name": "summary", "task": {"kind": "summarize"}},
        {
            "name": "deep",
            "model": "large",
            "prompt": "{summary}",
            "run_if": {"input_chars_over": 100},
        },
    )
    short = await p.run("short text", registry=registry)
    assert short.steps["deep"].status == "skipped" and not large.received
    long = await p.run("long text " * 30, registry=registry)
    assert long.steps["deep"].status == "ok"
    assert "300 > 100" in long.steps["deep"].reason


async def test_escalate_if_moves_a_step_to_the_large_model(two_tiers):
    registry, _small, _large = two_tiers
    p = pipeline(
        {
            "name": "s",
            "task": {"kind": "summarize"},
            "model": "small",
            "escalate_if": {"input_chars_over": 20},
            "escalate_to": "large",
        }
    )
    assert (await p.run("tiny", registry=registry)).steps["s"].model == "small"
    escalated = (await p.run("x" * 50, registry=registry)).steps["s"]
    assert escalated.model == "large" and escalated.escalated


async def test_failed_step_fails_dependents_and_triggers_step_failed(two_tiers):
    registry, small, _ = two_tiers
    once = FailoverConfig(retries=0, fallbacks={"small": []})  # so that the step fails
    registry = Registry(registry.config.model_copy(update={"failover": once}))
    small.enqueue(Script("error", status=500))
    p = pipeline(
        {"name": "facts", "task": FACTS},
        {"name": "uses", "prompt": "{facts}"},
        {
            "name": "rescue",
            "model": "large",
            "prompt": "{input}",
            "run_if": {"step_failed": "facts"},
        },
    )
    result = await p.run("text", registry=registry)
    assert result.steps["facts"].status == "failed" and "500" in result.steps["facts"].reason
    assert result.steps["uses"].status == "failed" and "facts" in result.steps["uses"].reason
    assert result.steps["rescue"].status == "ok" and result.steps["rescue"].model == "large"


async def test_independent_steps_run_concurrently():
    in_flight, peak = 0, 0

    async def chat(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.3)
        in_flight -= 1
        return JSONResponse(
            {
                "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        )

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with BackgroundServer(app) as server:
        registry = Registry(
            parse_config(
                f"models:\n  - {{name: m, backend: openai, base_url: '{server.url}/v1'}}\n"
            )
        )
        p = pipeline(*({"name": f"s{i}", "prompt": "{input}"} for i in range(3)))
        result = await p.run("doc", registry=registry)
        await registry.aclose()
    assert all(s.status == "ok" for s in result.steps.values())
    assert peak == 3


async def test_every_step_is_a_hop_in_the_ledger(two_tiers, state_home):
    registry, _, _ = two_tiers
    ledger = Ledger(f"sqlite:///{state_home}/ledger.db")
    p = pipeline(
        {"name": "a", "task": FACTS},
        {"name": "b", "model": "large", "prompt": "{a}"},
        {"name": "c", "prompt": "{a}", "run_if": {"input_chars_over": 10_000}},
    )
    result = await p.run("doc text", registry=registry, ledger=ledger)
    ledger.flush()
    from sqlalchemy import text

    with ledger.store.engine.connect() as db:
        rows = db.execute(
            text(
                "SELECT kind, hop, step, outcome, model, cost_usd FROM requests "
                "WHERE request_id = :r ORDER BY hop"
            ),
            {"r": result.request_id},
        ).all()
    ledger.close()
    assert [(r.kind, r.hop, r.step, r.outcome) for r in rows] == [
        ("request", 0, None, None),
        ("hop", 1, "a", "ok"),
        ("hop", 2, "b", "ok"),
        ("hop", 3, "c", "skipped"),
    ]
    assert rows[0].cost_usd == sum(r.cost_usd for r in rows[1:])


async def test_example_pipeline_on_real_meeting_transcripts(two_tiers):
    """QMSum meetings: small steps over every piece, deep analysis for the long ones, and the
    whole job costs less than sending each document whole to the large model."""
    registry, _small, _large = two_tiers
    path = shared_data("tasks", "qmsum", "val.jsonl")
    meetings = [json.loads(line) for line in path.read_text().splitlines()[:3]]
    p = Pipeline.from_yaml(EXAMPLE)
    large_price = registry.get("large").price
    for meeting in meetings:
        doc = "\n".join(f"{t['speaker']}: {t['content']}" for t in meeting["meeting_transcripts"])
        result = await p.run(doc, registry=registry)
        assert all(s.status in ("ok", "skipped") for s in result.steps.values())
        pieces = len(result.steps["facts"].output)
        assert pieces >= len(doc) // 4000
        assert result.steps["deep_analysis"].status == ("ok" if len(doc) > 30000 else "skipped")
        whole_doc_tokens = len(doc) // 4  # a generous lower bound on tokens
        assert result.cost_usd < large_price.cost(Usage(whole_doc_tokens, 400))


async def test_embedded_model_runs_a_summary_step(embedded_model_path):
    registry = Registry()
    p = pipeline(
        {"name": "summary", "task": {"kind": "summarize", "max_words": 10, "max_tokens": 24}}
    )
    result = await p.run(
        "The meeting agreed to ship the new release on Friday after testing.", registry=registry
    )
    await registry.aclose()
    step = result.steps["summary"]
    assert step.status == "ok" and step.model == "gemma-3-270m" and step.text.strip()
    assert step.usage.output_tokens > 0


SUMMARY = {"kind": "summarize", "max_words": 20}


async def test_an_empty_summary_escalates_and_dependents_run(two_tiers):
    registry, small, large = two_tiers
    small.enqueue(Script(text=""), Script(text="  "))  # the first answer and its repair turn
    large.enqueue(Script(text="The board approved the budget."))
    p = pipeline(
        {"name": "summary", "task": SUMMARY},
        {"name": "deep", "model": "large", "prompt": "Summary: {summary}. Analyse."},
    )
    result = await p.run("The board approved the budget.", registry=registry)
    summary = result.steps["summary"]
    assert summary.status == "ok" and summary.model == "large" and summary.escalated
    assert summary.text == "The board approved the budget."
    assert "empty" in summary.reason
    assert result.steps["deep"].status == "ok"
    assert "approved the budget" in large.received[-1]["messages"][0]["content"]


async def test_failed_attempts_show_their_tokens_and_cost(two_tiers, state_home):
    registry, small, large = two_tiers
    large.default = Script(text=NOTES)
    small.enqueue(
        Script(text='{"facts": "not a list"}', prompt_tokens=300, completion_tokens=40),
        Script(text="{", prompt_tokens=350, completion_tokens=2),
    )
    ledger = Ledger(f"sqlite:///{state_home}/ledger.db")
    result = await p_facts().run("doc text", registry=registry, ledger=ledger)
    facts = result.steps["facts"]
    failed, answered = facts.tries
    assert (failed.model, failed.outcome) == ("small", "failed")
    assert (failed.usage.input_tokens, failed.usage.output_tokens) == (650, 42)
    assert failed.cost_usd == registry.get("small").price.cost(failed.usage) > 0
    assert (answered.model, answered.outcome) == ("large", "ok")
    assert facts.usage.input_tokens == 650 + answered.usage.input_tokens
    assert facts.cost_usd == failed.cost_usd + answered.cost_usd == result.cost_usd
    shown = result.to_dict()["steps"]["facts"]
    assert shown["tries"][0]["usage"] == {"input_tokens": 650, "output_tokens": 42}
    ledger.flush()
    from sqlalchemy import text

    with ledger.store.engine.connect() as db:
        rows = db.execute(
            text(
                "SELECT hop, step, outcome, model, input_tokens, cost_usd FROM requests "
                "WHERE request_id = :r ORDER BY hop"
            ),
            {"r": result.request_id},
        ).all()
    ledger.close()
    assert [(r.hop, r.outcome, r.model) for r in rows] == [
        (0, None, "large"),
        (1, "failed", "small"),
        (2, "escalated", "large"),
    ]
    assert rows[1].input_tokens == 650 and rows[1].cost_usd == failed.cost_usd
    assert rows[0].cost_usd == pytest.approx(rows[1].cost_usd + rows[2].cost_usd)


def p_facts():
    return pipeline({"name": "facts", "task": FACTS})


def reply(text: str) -> JSONResponse:
    return JSONResponse(
        {
            "choices": [{"message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3},
        }
    )


async def chunked_facts(small_chat, large_chat):
    """The `facts` step over three paragraphs cut into three pieces, on a `small` and a
    `large` model served by the given chat handlers."""
    small = Starlette(routes=[Route("/v1/chat/completions", small_chat, methods=["POST"])])
    large = Starlette(routes=[Route("/v1/chat/completions", large_chat, methods=["POST"])])
    with BackgroundServer(small) as s_server, BackgroundServer(large) as l_server:
        models = [
            f"  - {{name: {name}, backend: openai, base_url: '{url}/v1', tier: {name}}}"
            for name, url in (("small", s_server.url), ("large", l_server.url))
        ]
        registry = Registry(parse_config("models:\n" + "\n".join(models) + "\n"))
        p = pipeline({"name": "facts", "task": FACTS, "chunk_chars": 200})
        doc = "\n\n".join(f"Paragraph {i}: " + "words " * 25 for i in range(3))
        result = await p.run(doc, registry=registry)
        await registry.aclose()
    return result


async def test_only_the_failed_piece_escalates():
    async def small_chat(request):  # invalid JSON for the first piece only, every time
        prompt = " ".join(m["content"] for m in (await request.json())["messages"])
        return reply("{" if "Paragraph 0" in prompt else NOTES)

    async def large_chat(_request):
        return reply('{"facts": ["from large"]}')

    result = await chunked_facts(small_chat, large_chat)
    facts = result.steps["facts"]
    assert facts.status == "ok" and facts.escalated and facts.model == "large"
    assert [piece["data"]["facts"] for piece in facts.output] == [
        ["from large"],
        ["budget approved"],
        ["budget approved"],
    ]
    assert "1 of 3 pieces escalated" in facts.reason
    assert [(t.piece, t.model, t.outcome) for t in facts.tries] == [
        (0, "small", "failed"),
        (0, "large", "ok"),
        (1, "small", "ok"),
        (2, "small", "ok"),
    ]


async def test_small_model_failing_every_step_still_completes_through_the_large_tier(
    two_tiers,
):
    registry, small, large = two_tiers
    small.default = Script(text="")  # empty summaries, empty prompt answers, invalid JSON
    large.default = Script(text=NOTES)
    p = Pipeline.from_yaml(EXAMPLE)
    doc = "\n\n".join(f"Speaker {i % 3}: item {i} " + "talk " * 300 for i in range(12))
    result = await p.run(doc, registry=registry)
    ran = [s for s in result.steps.values() if s.status != "skipped"]
    assert all(s.status == "ok" and s.model == "large" and s.escalated for s in ran)
    assert {"facts", "topics", "summary"} <= {s.name for s in ran}
    small_tries = [t for s in ran for t in s.tries if t.model == "small"]
    assert small_tries and all(t.outcome == "failed" for t in small_tries)
    assert result.cost_usd == pytest.approx(sum(t.cost_usd for s in ran for t in s.tries))


async def test_escalate_on_failure_false_fails_the_step_as_before(two_tiers):
    registry, small, _ = two_tiers
    small.enqueue(Script(text=""), Script(text=""))
    p = Pipeline(
        parse_pipeline(
            {
                "name": "t",
                "escalate_on_failure": False,
                "steps": [
                    {"name": "summary", "task": SUMMARY},
                    {"name": "u", "prompt": "{summary}"},
                ],
            }
        )
    )
    result = await p.run("text", registry=registry)
    summary = result.steps["summary"]
    assert summary.status == "failed" and "empty" in summary.reason
    assert summary.model == "small" and summary.usage.input_tokens == 10
    assert result.steps["u"].status == "failed"


async def test_an_empty_prompt_answer_escalates(two_tiers):
    registry, small, _large = two_tiers
    small.enqueue(Script(text=" "))
    result = await pipeline({"name": "p", "prompt": "{input}"}).run("doc", registry=registry)
    step = result.steps["p"]
    assert step.status == "ok" and step.model == "large" and step.text == "deep view"
    assert [t.outcome for t in step.tries] == ["failed", "ok"]


async def test_when_most_pieces_fail_the_whole_step_goes_up_once():
    large_prompts: list[str] = []

    async def small_chat(request):  # invalid JSON for two pieces of three
        prompt = " ".join(m["content"] for m in (await request.json())["messages"])
        return reply("{" if "Paragraph 2" not in prompt else NOTES)

    async def large_chat(request):
        large_prompts.append(" ".join(m["content"] for m in (await request.json())["messages"]))
        return reply('{"facts": ["from large"]}')

    result = await chunked_facts(small_chat, large_chat)
    facts = result.steps["facts"]
    assert facts.status == "ok" and facts.escalated and facts.model == "large"
    assert facts.output["data"]["facts"] == ["from large"]  # one answer for the whole input
    assert len(large_prompts) == 1 and all(f"Paragraph {i}" in large_prompts[0] for i in range(3))
    assert "2 of 3 pieces failed on small: the whole step went to large" in facts.reason
    assert [(t.piece, t.model, t.outcome) for t in facts.tries] == [
        (0, "small", "failed"),
        (1, "small", "failed"),
        (2, "small", "ok"),
        (None, "large", "ok"),
    ]
    assert result.cost_usd == pytest.approx(sum(t.cost_usd for t in facts.tries))
