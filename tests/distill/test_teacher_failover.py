"""The teacher runs behind the registry's failover policy: a 429's Retry-After is honoured, a
fallback answers when the teacher fails (and the example names it, at its rates), and a
fallback whose worst case exceeds what the item reserved is never called."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smallfirst.config import Config, ModelConfig, Price
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.teacher import LabelSettings, TeacherRun
from smallfirst.models.registry import Registry
from smallfirst.testing import Script, ScriptedUpstream
from tests.routing.upstreams import scripted_models

from .conftest import FAST_RETRIES, HashEmbedder, teacher_registry

Upstreams = tuple[dict[str, ScriptedUpstream], dict[str, str]]


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with scripted_models("teacher", "other") as found:
        yield found


def two_teachers(urls: dict[str, str], other_output_per_mtok: float) -> Registry:
    """`teacher` at $1000/Mtok out, falling back to `other` (same tier) at the given rate."""
    models = [
        ModelConfig(
            name=name,
            backend="openai",
            base_url=urls[name],
            tier="large",
            price=Price(input=0.0, output=rate),
            timeout_s=5,
        )
        for name, rate in (("teacher", 1000.0), ("other", other_output_per_mtok))
    ]
    failover = FAST_RETRIES.model_copy(update={"fallbacks": {"teacher": ["other"]}})
    return Registry(Config(models=models, failover=failover))


def labelling(registry: Registry, bank: ExampleBank, task: dict) -> TeacherRun:
    return TeacherRun.from_registry(bank, registry, "teacher", task, LabelSettings(concurrency=1))


async def test_a_429_is_retried_after_its_retry_after(scripted, sentiment_task) -> None:
    upstream, url = scripted
    upstream.enqueue(Script("error", status=429, retry_after=0.0), Script(text="positive"))
    registry = teacher_registry(url)
    bank = ExampleBank.open("ratelimited", HashEmbedder())
    result = await labelling(registry, bank, sentiment_task).run(["great"])
    assert result.labelled == 1 and result.failed == 0 and len(upstream.received) == 2
    await registry.aclose()


async def test_a_fallback_labels_and_is_priced_at_its_rates(
    upstreams: Upstreams, sentiment_task
) -> None:
    scripted, urls = upstreams
    scripted["teacher"].default = Script("error", status=503)
    scripted["other"].default = Script(text="negative", prompt_tokens=0, completion_tokens=10)
    registry = two_teachers(urls, other_output_per_mtok=100.0)
    bank = ExampleBank.open("fellback", HashEmbedder())
    result = await labelling(registry, bank, sentiment_task).run(["awful"])
    assert result.labelled == 1 and len(scripted["teacher"].received) == 3
    (example,) = bank.examples()
    assert example.label == "negative" and example.teacher == "other"
    assert result.cost_usd == pytest.approx(10 * 100 / 1e6)  # other's rate, not teacher's
    assert bank.total_cost() == pytest.approx(result.cost_usd)
    await registry.aclose()


async def test_a_fallback_beyond_the_reservation_is_never_called(
    upstreams: Upstreams, sentiment_task
) -> None:
    scripted, urls = upstreams
    scripted["teacher"].default = Script("error", status=503)
    registry = two_teachers(urls, other_output_per_mtok=5000.0)
    bank = ExampleBank.open("capped-fallback", HashEmbedder())
    result = await labelling(registry, bank, sentiment_task).run(["awful"])
    assert result.failed == 1 and result.cost_usd == 0
    assert not scripted["other"].received
    (failure,) = bank.failures()
    assert failure.attempts == 3 and "503" in failure.reason
    await registry.aclose()


async def test_without_prices_for_other_models_no_fallback_is_tried(
    upstreams: Upstreams, sentiment_task
) -> None:
    """A `TeacherRun` given only the teacher's price cannot price a fallback: none fits."""
    scripted, urls = upstreams
    scripted["teacher"].default = Script("error", status=503)
    registry = two_teachers(urls, other_output_per_mtok=1.0)
    bank = ExampleBank.open("no-prices", HashEmbedder())
    price = registry.get("teacher").price
    run = TeacherRun(bank, registry.provider("teacher"), price, sentiment_task)
    result = await run.run(["awful"])
    assert result.failed == 1 and not scripted["other"].received
    await registry.aclose()
