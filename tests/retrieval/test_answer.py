from pathlib import Path

import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.errors import UpstreamError
from smallfirst.models.registry import Registry
from smallfirst.retrieval.answer import (
    NOT_FOUND,
    answer_with_kb,
    build_grounded_messages,
    fit_to_context,
    parse_citations,
    says_not_found,
)
from smallfirst.retrieval.kb import Chunk, KnowledgeBase
from smallfirst.testing import Script


@pytest.fixture
def kb(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mars.md").write_text("Mars is called the red planet because of iron oxide.")
    (docs / "eggs.txt").write_text("Boil an egg for nine minutes for a hard yolk.")
    (docs / "rust.html").write_text("<p>The Rust borrow checker prevents data races.</p>")
    with KnowledgeBase.create("facts") as base:
        base.add([docs])
        yield base


def scripted_registry(url: str, context: int = 4096) -> Registry:
    model = ModelConfig(name="small", backend="openai", base_url=url, context=context)
    return Registry(Config(models=[model]))


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("Mars is red [1].", 3, [1]),
        ("Both [2, 1] and again [2][3].", 3, [2, 1, 3]),
        ("Invented [7] and [0].", 3, []),
        ("No citation at all.", 3, []),
    ],
)
def test_parse_citations(text, n, expected):
    assert parse_citations(text, n) == expected


def test_not_found_is_recognised_loosely():
    assert says_not_found("Not in the  knowledge base.")
    assert not says_not_found("It is in the base.")


def test_prompt_numbers_the_sources_and_states_the_rules():
    chunks = [Chunk("Alpha\n text.", "/x/a.txt", 0.9), Chunk("Beta.", "/x/b.md", 0.5)]
    system, user = build_grounded_messages("What is alpha?", chunks)
    assert "[1] (a.txt) Alpha text." in system.content
    assert "[2] (b.md) Beta." in system.content
    assert f"say exactly: {NOT_FOUND}" in system.content
    assert (user.role, user.content) == ("user", "What is alpha?")
    extractive, _ = build_grounded_messages("q", chunks, extractive=True)
    assert "copying the exact words" in extractive.content


def test_fit_to_context_keeps_the_best_chunks_that_fit():
    chunks = [Chunk("x" * 1000, "a", 0.9), Chunk("y" * 1000, "b", 0.8), Chunk("z", "c", 0.1)]
    assert fit_to_context(chunks, context_tokens=4096, max_tokens=100) == chunks
    assert [c.source for c in fit_to_context(chunks, 800, 100)] == ["a"]
    assert [c.source for c in fit_to_context(chunks, 256, 100)] == ["a"]


async def test_answer_cites_the_retrieved_chunk(kb, scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="Because of iron oxide [1]."))
    registry = scripted_registry(url)
    answer = await answer_with_kb("Why is Mars red?", kb, registry, model="small", k=2)
    assert answer.citations == [1] and not answer.not_found
    assert answer.cited[0].source.endswith("mars.md")
    assert answer.plain_text == "Because of iron oxide ."
    assert answer.model == "small" and answer.generation.usage.output_tokens > 0
    system = upstream.received[-1]["messages"][0]["content"]
    assert "[1] (mars.md) Mars is called the red planet" in system
    assert upstream.received[-1]["max_tokens"] == 128
    await registry.aclose()


async def test_answer_not_in_the_knowledge_base(kb, scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="not in the knowledge base"))
    registry = scripted_registry(url)
    answer = await answer_with_kb("Who won the 1998 World Cup?", kb, registry, "small")
    assert answer.not_found and answer.citations == [] and answer.cited == []
    await registry.aclose()


async def test_min_score_answers_not_found_without_calling_a_model(kb, scripted):
    upstream, url = scripted
    registry = scripted_registry(url)
    answer = await answer_with_kb("Who won the 1998 World Cup?", kb, registry, min_score=0.95)
    assert answer.not_found and answer.text == NOT_FOUND
    assert answer.model is None and answer.generation is None
    assert upstream.received == []


async def test_auto_routes_like_any_request(kb, scripted):
    upstream, url = scripted
    upstream.enqueue(Script(text="Nine minutes [1]."))
    registry = scripted_registry(url)
    answer = await answer_with_kb("How long to boil an egg?", kb, registry, model="auto", k=1)
    assert answer.model == "small" and answer.citations == [1]
    await registry.aclose()


async def test_upstream_failure_is_an_upstream_error(kb, scripted):
    upstream, url = scripted
    upstream.default = Script(behaviour="error", status=503)  # retries and fallbacks fail too
    registry = scripted_registry(url)
    with pytest.raises(UpstreamError):
        await answer_with_kb("Why is Mars red?", kb, registry, "small")
    await registry.aclose()


async def test_embedded_model_answers_from_the_kb(kb, embedded_registry):
    answer = await answer_with_kb("Why is Mars red?", kb, embedded_registry, k=2, max_tokens=12)
    assert answer.model == "gemma-3-270m" and answer.text
    assert answer.generation.usage.output_tokens <= 12
    assert answer.citations == parse_citations(answer.text, len(answer.sources))
    assert answer.not_found == says_not_found(answer.text)
    await embedded_registry.aclose()


async def test_a_knowledge_base_feeds_an_answer_task(kb, scripted):
    """The tasks package's retriever hook takes a KnowledgeBase as it is."""
    from smallfirst.tasks import Task

    upstream, url = scripted
    upstream.enqueue(Script(text="Nine minutes [1]."))
    registry = scripted_registry(url)
    task = Task(kind="answer", name="kb-qa", k=2, retriever=kb)
    result = await task.run("How long to boil an egg?", model="small", registry=registry)
    assert [Path(c.source).name for c in result.citations] == ["eggs.txt"]
    assert len(result.passages) == 2
    assert "Boil an egg for nine minutes" in upstream.received[-1]["messages"][-1]["content"]
    await registry.aclose()


def test_a_knowledge_base_works_from_the_blocking_task_api(kb, scripted):
    """run_sync searches from a background event-loop thread, not the one that opened the KB."""
    from smallfirst.tasks import Task

    upstream, url = scripted
    upstream.enqueue(Script(text="Iron oxide [1]."))
    task = Task(kind="answer", name="kb-qa", k=1, retriever=kb)
    result = task.run_sync("Why is Mars red?", model="small", registry=scripted_registry(url))
    assert [Path(c.source).name for c in result.citations] == ["mars.md"]


async def test_an_answer_task_spec_names_its_knowledge_base(kb, scripted):
    from smallfirst.errors import NotFoundError
    from smallfirst.tasks import Task

    upstream, url = scripted
    upstream.enqueue(Script(text="Iron oxide [1]."))
    registry = scripted_registry(url)
    task = Task(kind="answer", name="kb-qa", k=1, knowledge_base="facts")
    result = await task.run("Why is Mars red?", model="small", registry=registry)
    assert [Path(c.source).name for c in result.citations] == ["mars.md"]
    missing = Task(kind="answer", name="kb-qa", knowledge_base="ghost")
    with pytest.raises(NotFoundError, match="'ghost' does not exist"):
        await missing.run("Why is Mars red?", model="small", registry=registry)
    await registry.aclose()
