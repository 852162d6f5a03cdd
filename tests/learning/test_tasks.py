"""TaskNamer: an explicit name, then the endpoint, then a fingerprint of the system prompt
and the prompt template, stable from a template's first request on."""

from __future__ import annotations

import pytest

from smallfirst.config import LearnConfig
from smallfirst.errors import InvalidRequestError
from smallfirst.learning import tasks
from smallfirst.learning.tasks import TaskNamer, request_text

SYSTEM = "You are the support assistant of a bank."
CLASSIFY = "Classify the intent of this customer message.\n{}"
EXTRACT = "Extract the slots of this request as JSON.\n{}"


def chat(user: str, system: str | None = SYSTEM, **extra) -> dict:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return {"model": "auto", "messages": [*messages, {"role": "user", "content": user}], **extra}


def names(namer: TaskNamer, template: str, n: int, start: int = 0, **options) -> list[str]:
    return [
        namer.name(chat(template.format(f"message {i} about card {i * 7}"), **options), {}, None)
        for i in range(start, start + n)
    ]


@pytest.fixture
def namer() -> TaskNamer:
    return TaskNamer(LearnConfig())


def test_an_explicit_name_beats_the_endpoint_and_the_body_beats_the_header(namer) -> None:
    body = chat("hi", metadata={"task": "refunds"})
    assert namer.name(body, {}, "cascade-cheap") == "refunds"
    assert namer.name(chat("hi"), {"x-smallfirst-task": "tickets"}, "cascade-cheap") == "tickets"
    assert namer.name(body, {"x-smallfirst-task": "tickets"}, None) == "refunds"


def test_the_endpoint_names_a_request_that_does_not_name_itself(namer) -> None:
    assert namer.name(chat("hi", metadata={"user": "u1"}), {}, "cascade-cheap") == "cascade-cheap"


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        (chat("hi", metadata={"task": 5}), {}, "metadata.task"),
        (chat("hi", metadata={"task": ""}), {}, "metadata.task"),
        (chat("hi", metadata={"task": " padded"}), {}, "metadata.task"),
        (chat("hi", metadata={"task": "x" * 101}), {}, "metadata.task"),
        (chat("hi", metadata={"task": "two\nlines"}), {}, "metadata.task"),
        (chat("hi"), {"x-smallfirst-task": "tab\there"}, "x-smallfirst-task"),
        (chat("hi", metadata={"task": "ok"}), {"x-smallfirst-task": ""}, "x-smallfirst-task"),
    ],
)
def test_a_bad_explicit_name_is_a_400_naming_the_field(namer, body, headers, field) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        namer.name(body, headers, None)
    assert raised.value.status == 400 and raised.value.param == field
    assert field in raised.value.message


def test_the_same_template_under_the_same_system_prompt_is_one_task(namer) -> None:
    found = names(namer, CLASSIFY, 40)
    assert len(set(found)) == 1
    assert found[0].startswith("t-") and len(found[0]) == 14
    int(found[0][2:], 16)


def test_a_single_template_is_named_the_same_by_every_replica_from_the_first_request() -> None:
    """One template per system prompt: the name is the system prompt's alone, so it does
    not depend on when the template was learned (or on which replica)."""
    early = names(TaskNamer(LearnConfig()), CLASSIFY, 1)
    late = names(TaskNamer(LearnConfig()), CLASSIFY, 30)
    assert set(late) == set(early)


def test_different_templates_under_one_system_prompt_are_different_tasks(namer) -> None:
    first = names(namer, CLASSIFY, 10)
    second = names(namer, EXTRACT, 10)
    assert len(set(first)) == 1
    # the second template's first prompts (before it is known) count in the first task
    split = second.index(next(name for name in second if name != first[0]))
    assert split <= tasks.MIN_PROMPTS - 1
    assert len(set(second[split:])) == 1 and second[split] != first[0]
    # both stay put afterwards, interleaved
    assert set(names(namer, CLASSIFY, 5, start=50)) == {first[0]}
    assert set(names(namer, EXTRACT, 5, start=50)) == {second[split]}


def test_templates_arriving_mixed_from_the_start_are_split(namer) -> None:
    mixed = [
        name
        for i in range(20)
        for name in (
            namer.name(chat(CLASSIFY.format(f"text {i}")), {}, None),
            namer.name(chat(EXTRACT.format(f"order {i}")), {}, None),
        )
    ]
    assert len(set(mixed[-10::2])) == 1 and len(set(mixed[-9::2])) == 1
    assert mixed[-10] != mixed[-9]


def test_a_fixed_closing_is_a_template_too(namer) -> None:
    closing = "{}\nAnswer with one word: positive or negative."
    first = names(namer, CLASSIFY, 10)
    second = names(namer, closing, 10)
    assert second[-1] != first[0] and len(set(second[5:])) == 1


def test_another_system_prompt_is_another_task(namer) -> None:
    ours = names(namer, CLASSIFY, 6)
    theirs = names(namer, CLASSIFY, 6, system="You are a travel agent.")
    none = names(namer, CLASSIFY, 6, system=None)
    assert len({ours[-1], theirs[-1], none[-1]}) == 3


def test_free_text_under_one_system_prompt_is_one_task(namer) -> None:
    found = {namer.name(chat(f"question {i}: how do I {i}?"), {}, None) for i in range(300)}
    assert len(found) == 1


def test_memory_is_bounded(namer, monkeypatch) -> None:
    monkeypatch.setattr(tasks, "MAX_SYSTEMS", 10)
    for i in range(50):
        namer.name(chat("x", system=f"system {i}"), {}, None)
    assert len(namer._systems) == 10
    for i in range(tasks.SAMPLES * 2):  # long prompts sharing no line: nothing to learn
        namer.name(chat(f"{i} " + "y" * 100_000, system="long"), {}, None)
    samples = namer._systems[next(reversed(namer._systems))].samples
    assert len(samples) == tasks.SAMPLES
    assert all(len(head) == len(tail) == tasks.SAMPLE_CHARS for head, tail in samples)


def test_every_request_shape_gives_its_system_prompt_and_prompt() -> None:
    parts = [{"type": "text", "text": "Classify:"}, {"type": "image_url"}, "text"]
    assert request_text(chat("hi")) == (SYSTEM, "hi")
    assert request_text({"messages": [{"role": "developer", "content": "dev"},
                                      {"role": "user", "content": parts},
                                      {"role": "assistant", "content": "a"}]}) == (
        "dev", "Classify:\ntext")  # fmt: skip
    anthropic = {"system": [{"type": "text", "text": "sys"}], "messages": [
        {"role": "user", "content": "q"}]}  # fmt: skip
    assert request_text(anthropic) == ("sys", "q")
    assert request_text({"instructions": "be brief", "input": "q"}) == ("be brief", "q")
    assert request_text({"input": [{"role": "user", "content": "q2"}]}) == ("", "q2")
    assert request_text({"prompt": "complete me"}) == ("", "complete me")
    assert request_text({"prompt": [1, 2, 3]}) == ("", "")
    assert request_text({"messages": "not a list"}) == ("", "")


def test_replicas_seeing_the_same_traffic_agree_on_every_name() -> None:
    replicas = [TaskNamer(LearnConfig()), TaskNamer(LearnConfig())]
    seen = [names(r, CLASSIFY, 8) + names(r, EXTRACT, 8) for r in replicas]
    assert seen[0] == seen[1] and len(set(seen[0])) == 2
