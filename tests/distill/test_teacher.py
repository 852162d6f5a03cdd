import asyncio

import pytest

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.teacher import LabelProgress, LabelSettings, TeacherRun
from smallfirst.errors import UpstreamError
from smallfirst.testing import Script

from .conftest import HashEmbedder, teacher_registry

INPUTS = [f"review number {i}" for i in range(12)]


def sent_inputs(upstream) -> list[str]:
    """The inputs that reached the teacher, in order (the user turn is 'Text: <input>')."""
    return [body["messages"][-1]["content"].removeprefix("Text: ") for body in upstream.received]


def make_run(registry, bank, task, **settings) -> TeacherRun:
    """The teacher behind the registry's failover policy, as `smallfirst distill` runs it."""
    return TeacherRun.from_registry(bank, registry, "teacher", task, LabelSettings(**settings))


async def test_labels_every_input_once_with_cost(scripted, sentiment_task):
    upstream, url = scripted
    upstream.default = Script(text="Positive.", prompt_tokens=5, completion_tokens=2)
    registry = teacher_registry(url)
    bank = ExampleBank.open("t", HashEmbedder())
    result = await make_run(registry, bank, sentiment_task, concurrency=4).run(INPUTS + INPUTS[:3])
    assert result.labelled == 12 and result.failed == 0 and result.total == 12
    assert sorted(sent_inputs(upstream)) == sorted(INPUTS)
    assert {e.label for e in bank.examples()} == {"positive"}
    assert result.cost_usd == pytest.approx(12 * 2 * 1000 / 1e6)
    assert bank.total_cost() == pytest.approx(result.cost_usd)
    body = upstream.received[0]
    assert "positive, negative" in body["messages"][0]["content"]
    assert body["temperature"] == 0.0
    await registry.aclose()


async def test_resume_after_interruption_labels_nothing_twice(scripted, sentiment_task):
    upstream, url = scripted
    upstream.default = Script(text="negative", delay_s=0.05)
    registry = teacher_registry(url)
    bank = ExampleBank.open("resume", HashEmbedder())
    reached = asyncio.Event()

    def on_progress(state: LabelProgress) -> None:
        if state.labelled >= 4:
            reached.set()

    first = make_run(registry, bank, sentiment_task, concurrency=2)
    first.on_progress = on_progress
    job = asyncio.create_task(first.run(INPUTS))
    await reached.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    stored_first = {e.input for e in bank.examples()}
    assert 4 <= len(stored_first) < len(INPUTS)

    upstream.received.clear()
    second = await make_run(registry, bank, sentiment_task, concurrency=3).run(INPUTS)
    assert second.skipped == len(stored_first)
    assert not set(sent_inputs(upstream)) & stored_first
    assert len(sent_inputs(upstream)) == len(set(sent_inputs(upstream)))
    assert sorted(e.input for e in bank.examples()) == sorted(INPUTS)
    await registry.aclose()


async def test_cap_stops_before_spending_more_and_rerun_continues(scripted, sentiment_task):
    upstream, url = scripted
    upstream.default = Script(text="positive", prompt_tokens=0, completion_tokens=10)
    registry = teacher_registry(url)  # $1000/Mtok out: each answer costs $0.01, worst case $0.01
    bank = ExampleBank.open("capped", HashEmbedder())
    run = make_run(registry, bank, sentiment_task, concurrency=3, max_usd=0.055, max_tokens=10)
    result = await run.run(INPUTS)
    assert result.stopped_by_cap
    assert 0 < result.labelled < len(INPUTS)
    assert result.cost_usd <= 0.055
    assert len(upstream.received) == result.labelled
    more = await make_run(registry, bank, sentiment_task, max_usd=1.0, max_tokens=10).run(INPUTS)
    assert not more.stopped_by_cap
    assert len(bank) == len(INPUTS) and len(upstream.received) == len(INPUTS)
    await registry.aclose()


async def test_server_errors_and_malformed_responses_are_retried(scripted, sentiment_task):
    upstream, url = scripted
    upstream.enqueue(Script("error", status=500), Script("malformed"), Script(text="yes"))
    upstream.default = Script(text="negative")
    registry = teacher_registry(url)
    bank = ExampleBank.open("retry", HashEmbedder())
    result = await make_run(registry, bank, sentiment_task, concurrency=1).run(INPUTS[:2])
    assert result.labelled == 1 and result.failed == 1
    (failure,) = bank.failures()
    assert failure.input == INPUTS[0] and failure.attempts == 3
    assert "not one of the 2 labels" in failure.reason  # the third try answered 'yes'
    assert len(upstream.received) == 4
    rerun = await make_run(registry, bank, sentiment_task).run(INPUTS[:2])
    assert rerun.labelled == 1 and rerun.skipped == 1 and bank.failures() == []
    await registry.aclose()


async def test_bad_request_is_skipped_with_reason_but_bad_key_stops_the_run(
    scripted, sentiment_task
):
    upstream, url = scripted
    upstream.enqueue(Script("error", status=400))
    upstream.default = Script(text="positive")
    registry = teacher_registry(url)
    bank = ExampleBank.open("skip", HashEmbedder())
    result = await make_run(registry, bank, sentiment_task, concurrency=1).run(INPUTS[:3])
    assert result.failed == 1 and result.labelled == 2
    assert "InvalidRequestError" in result.failures[INPUTS[0]]
    assert len(upstream.received) == 3  # a 400 is not retried

    upstream.default = Script("error", status=401)
    with pytest.raises(UpstreamError, match="401"):
        await make_run(registry, bank, sentiment_task, concurrency=2).run(INPUTS)
    await registry.aclose()


async def test_an_answer_outside_the_labels_is_paid_once_per_run_and_costs_add_up(
    scripted, sentiment_task
):
    upstream, url = scripted
    upstream.default = Script(text="yes", prompt_tokens=0, completion_tokens=10)  # $0.01 each
    registry = teacher_registry(url)
    bank = ExampleBank.open("offlabel", HashEmbedder())
    first = await make_run(registry, bank, sentiment_task).run(INPUTS[:1])
    assert first.failed == 1 and len(upstream.received) == 1  # not asked again in this run
    assert first.cost_usd == pytest.approx(0.01) and bank.total_cost() == pytest.approx(0.01)
    second = await make_run(registry, bank, sentiment_task).run(INPUTS[:1])
    assert second.failed == 1 and len(upstream.received) == 2
    (failure,) = bank.failures()
    assert failure.attempts == 2
    assert bank.total_cost() == pytest.approx(0.02)  # added to, not overwritten
    upstream.default = Script(text="positive", prompt_tokens=0, completion_tokens=10)
    third = await make_run(registry, bank, sentiment_task).run(INPUTS[:1])
    assert third.labelled == 1 and bank.failures() == []
    assert bank.total_cost() == pytest.approx(0.03)  # the failed answers stay counted
    await registry.aclose()


async def test_a_teacher_allowed_out_of_scope_sends_none_to_background_paid_once(
    scripted, sentiment_task
):
    upstream, url = scripted
    answers = ["positive", "None.", "negative", "none"]
    upstream.enqueue(*(Script(text=a, prompt_tokens=0, completion_tokens=10) for a in answers))
    registry = teacher_registry(url)  # $0.01 an answer
    bank = ExampleBank.open("oos", HashEmbedder())
    run = make_run(registry, bank, sentiment_task, concurrency=1, out_of_scope=True)
    result = await run.run(INPUTS[:4])
    assert (result.labelled, result.out_of_scope, result.failed) == (2, 2, 0)
    assert "fits none of the labels, answer none" in upstream.received[0]["messages"][0]["content"]
    assert [e.input for e in bank.examples()] == [INPUTS[0], INPUTS[2]]
    assert bank.background_count() == 2
    assert bank.total_cost() == pytest.approx(0.04) == pytest.approx(result.cost_usd)
    again = await make_run(registry, bank, sentiment_task, out_of_scope=True).run(INPUTS[:4])
    assert again.skipped == 4 and len(upstream.received) == 4  # nothing asked twice
    await registry.aclose()


async def test_without_out_of_scope_a_none_answer_is_a_failure(scripted, sentiment_task):
    upstream, url = scripted
    upstream.default = Script(text="none")
    registry = teacher_registry(url)
    bank = ExampleBank.open("strict", HashEmbedder())
    result = await make_run(registry, bank, sentiment_task).run(INPUTS[:2])
    assert result.failed == 2 and bank.background_count() == 0
    assert "none" not in upstream.received[0]["messages"][0]["content"]
    await registry.aclose()
