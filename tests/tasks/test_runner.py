"""The task path against a real scripted OpenAI-compatible server: constraints sent, repair
turn, typed errors, citations, routers."""

import pytest
from pydantic import BaseModel

from smallfirst.config import Config, ModelConfig
from smallfirst.errors import InvalidRequestError, ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.tasks import Chunk, Task, TaskOutputError
from smallfirst.testing.scripted import Script

SENTIMENT = {"kind": "classify", "name": "sentiment", "labels": ["negative", "positive"]}


class Contact(BaseModel):
    name: str
    email: str | None = None


@pytest.fixture
def upstream(scripted):
    script, url = scripted
    config = Config(models=[ModelConfig(name="big", backend="openai", base_url=url, tier="large")])
    return script, Registry(config)


async def test_classify_sends_the_label_schema_and_repairs_once(upstream):
    script, registry = upstream
    script.enqueue(Script(text="maybe"), Script(text='{"label": "positive"}'))
    result = await Task(**SENTIMENT).run("I love it", registry=registry)
    assert result.label == "positive" and result.attempts == 2
    first, repair = script.received
    schema = first["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["negative", "positive"]
    assert repair["messages"][-2] == {"role": "assistant", "content": "maybe"}
    assert "'maybe' is not one of the labels" in repair["messages"][-1]["content"]
    assert result.usage.input_tokens == 10  # both calls are counted
    await registry.aclose()


async def test_extract_returns_a_pydantic_instance_after_repairing_invalid_json(upstream):
    script, registry = upstream
    script.enqueue(Script(text='{"name": "Ann", '), Script(text='{"name": "Ann", "email": null}'))
    task = Task(kind="extract", name="contact", schema=Contact)
    result = await task.run("Ann here", registry=registry)
    assert result.data == Contact(name="Ann") and result.attempts == 2
    sent = script.received[0]["response_format"]["json_schema"]["schema"]
    assert sent["additionalProperties"] is False and sent["required"] == ["name", "email"]
    assert "not valid JSON" in script.received[1]["messages"][-1]["content"]
    assert result.to_dict()["data"] == {"name": "Ann", "email": None}
    await registry.aclose()


async def test_invalid_twice_raises_task_output_error_for_cascades(upstream):
    script, registry = upstream
    script.enqueue(Script(text="no idea"), Script(text="still no idea"))
    with pytest.raises(TaskOutputError) as info:
        await Task(**SENTIMENT).run("hmm", registry=registry)
    error = info.value
    assert error.status == 502 and error.code == "invalid_task_output"
    assert error.outputs == ["no idea", "still no idea"]
    assert error.to_openai()["error"]["code"] == "invalid_task_output"
    await registry.aclose()


async def test_empty_summary_is_repaired(upstream):
    script, registry = upstream
    script.enqueue(Script(text="  "), Script(text="Launch moved to March."))
    result = await Task(kind="summarize").run("long meeting notes", registry=registry)
    assert result.text == "Launch moved to March." and result.attempts == 2
    assert "response_format" not in script.received[0]
    await registry.aclose()


async def test_an_answer_begun_on_the_next_line_is_asked_for_there(scripted):
    """The one-line stop cuts "Summary:\\n..." to nothing: the runner asks again with the
    newline in the prompt, not as a repair, and bills both calls."""
    script, url = scripted
    model = ModelConfig(name="base", backend="openai", base_url=url, prompt_style="completion")
    registry = Registry(Config(models=[model]))
    script.enqueue(Script(text=""), Script(text="Launch moved to March."))
    result = await Task(kind="summarize").run("long meeting notes", registry=registry)
    first, again = script.received
    assert first["stop"] == ["\n"] and first["prompt"].endswith("Summary:")
    assert again["prompt"] == first["prompt"] + "\n" and again["stop"] == ["\n"]
    assert result.text == "Launch moved to March." and result.attempts == 1
    assert result.usage.input_tokens == 10
    await registry.aclose()


async def test_an_empty_answer_on_the_next_line_too_goes_to_the_repair_turn(scripted):
    script, url = scripted
    model = ModelConfig(name="base", backend="openai", base_url=url, prompt_style="completion")
    registry = Registry(Config(models=[model]))
    script.enqueue(*(Script(text="") for _ in range(4)))
    with pytest.raises(TaskOutputError, match="the answer is empty") as info:
        await Task(kind="summarize").run("long meeting notes", registry=registry)
    assert len(script.received) == 4 and info.value.usage.input_tokens == 20
    await registry.aclose()


class Shelf:
    """A retriever as smallfirst kb would be: search(query, k) -> chunks with sources."""

    def __init__(self):
        self.asked = []

    async def search(self, query, k):
        self.asked.append((query, k))
        return [Chunk("Opens at 9am.", "hours.md"), Chunk("Parking is free.", "parking.md")]


async def test_answer_uses_the_retriever_and_returns_cited_sources(upstream):
    script, registry = upstream
    script.enqueue(Script(text="At 9am [1]. [7]"))
    shelf = Shelf()
    result = await Task(kind="answer", k=2).run("When?", registry=registry, retriever=shelf)
    assert shelf.asked == [("When?", 2)]
    assert [c.source for c in result.citations] == ["hours.md"]
    assert "[2] Parking is free." in script.received[0]["messages"][-1]["content"]
    assert result.to_dict()["citations"] == [{"text": "Opens at 9am.", "source": "hours.md"}]
    await registry.aclose()


async def test_answer_with_inline_context(upstream):
    script, registry = upstream
    script.enqueue(Script(text="Free [1]."))
    task = Task(kind="answer", context=["Parking is free."])
    result = await task.run("Parking?", registry=registry)
    assert result.citations[0].source == "context[0]"
    await registry.aclose()


async def test_router_name_picks_the_model_and_is_reported(upstream):
    script, registry = upstream
    script.enqueue(Script(text="negative"))
    result = await Task(**SENTIMENT).run("bad", model="auto", registry=registry)
    assert result.model == "big" and result.router == "auto"
    await registry.aclose()


async def test_bad_model_and_empty_input_are_clear_errors(upstream):
    _script, registry = upstream
    with pytest.raises(ModelNotFoundError, match="'nope' does not exist"):
        await Task(**SENTIMENT).run("x", model="nope", registry=registry)
    with pytest.raises(InvalidRequestError, match="non-empty string"):
        await Task(**SENTIMENT).run("  ", registry=registry)
    await registry.aclose()


def test_run_sync_twice_shares_one_loop(upstream):
    script, registry = upstream
    script.enqueue(Script(text="positive"), Script(text="negative"))
    task = Task(**SENTIMENT)
    assert task.run_sync("good", registry=registry).label == "positive"
    assert task.run_sync("bad", registry=registry).label == "negative"


def test_examples_outside_the_labels_are_refused():
    from smallfirst.errors import ConfigError

    with pytest.raises(ConfigError, match=r"examples\[0\]: output 'meh' is not one of the labels"):
        Task(**SENTIMENT, examples=[{"input": "x", "output": "meh"}])


def test_extract_examples_must_match_the_schema():
    from smallfirst.errors import ConfigError

    bad = [{"input": "x", "output": {"email": "a@b.c"}}]
    with pytest.raises(ConfigError, match=r"examples\[0\]: output does not match.*name"):
        Task(kind="extract", schema=Contact, examples=bad)
    with pytest.raises(ConfigError, match="must be a mapping"):
        Task(kind="extract", schema=Contact, examples=[{"input": "x", "output": "Ann"}])


def two_tier_registry(small_url: str, large_url: str) -> Registry:
    return Registry(
        Config(
            models=[
                ModelConfig(
                    name="small",
                    backend="openai",
                    base_url=small_url,
                    tier="small",
                    price={"input": 1, "output": 2},
                ),
                ModelConfig(
                    name="large",
                    backend="openai",
                    base_url=large_url,
                    tier="large",
                    price={"input": 10, "output": 30},
                ),
            ]
        )
    )


async def test_a_failure_carries_the_tokens_it_spent(scripted):
    script, url = scripted
    registry = two_tier_registry(url, url)
    script.enqueue(
        Script(text="no idea", prompt_tokens=40, completion_tokens=7),
        Script(text="still no idea", prompt_tokens=55, completion_tokens=9),
    )
    with pytest.raises(TaskOutputError) as info:
        await Task(**SENTIMENT).run("hmm", model="small", registry=registry)
    error = info.value
    assert (error.usage.input_tokens, error.usage.output_tokens) == (95, 16)
    [attempt] = error.tries
    assert attempt.model == "small" and attempt.outcome == "failed"
    assert attempt.cost_usd == registry.get("small").price.cost(error.usage) > 0
    await registry.aclose()


async def test_escalate_on_failure_goes_up_a_tier_and_keeps_every_attempt(scripted):
    from smallfirst.testing import BackgroundServer, ScriptedUpstream

    small, small_url = scripted
    small.enqueue(Script(text="", completion_tokens=0), Script(text=" ", completion_tokens=1))
    large = ScriptedUpstream(Script(text="Launch moved to March.", completion_tokens=5))
    with BackgroundServer(large.app) as server:
        registry = two_tier_registry(small_url, server.url + "/v1")
        task = Task(kind="summarize")
        with pytest.raises(TaskOutputError):
            await task.run("notes", model="small", registry=registry)
        small.enqueue(Script(text=""), Script(text=""))
        result = await task.run("notes", model="small", registry=registry, escalate_on_failure=True)
        await registry.aclose()
    assert result.text == "Launch moved to March." and result.model == "large"
    assert result.escalated and [t.model for t in result.tries] == ["small", "large"]
    failed, answered = result.tries
    assert failed.outcome == "failed" and "empty" in failed.reason
    assert failed.usage.input_tokens == 10 and failed.cost_usd > 0
    assert result.usage.input_tokens == failed.usage.input_tokens + answered.usage.input_tokens
    assert result.cost_usd == failed.cost_usd + answered.cost_usd
    assert result.to_dict()["tries"][0]["outcome"] == "failed"


async def test_escalation_stops_at_the_top_tier(upstream):
    script, registry = upstream  # one model, tier large: nowhere to go
    script.enqueue(Script(text=""), Script(text=""))
    with pytest.raises(TaskOutputError) as info:
        await Task(kind="summarize").run("notes", registry=registry, escalate_on_failure=True)
    assert [t.model for t in info.value.tries] == ["big"]
    await registry.aclose()


async def test_a_failed_escalation_keeps_the_small_models_tokens(scripted):
    small, small_url = scripted
    small.enqueue(Script(text="", prompt_tokens=70), Script(text="", prompt_tokens=80))
    registry = two_tier_registry(small_url, "http://127.0.0.1:9/v1")  # large: nothing listens
    with pytest.raises(TaskOutputError) as info:
        await Task(kind="summarize").run(
            "notes", model="small", registry=registry, escalate_on_failure=True
        )
    await registry.aclose()
    error = info.value
    assert "escalating to 'large' failed" in error.message
    assert [t.model for t in error.tries] == ["small"] and error.usage.input_tokens == 150
