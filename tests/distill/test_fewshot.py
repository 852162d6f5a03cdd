import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.fewshot import few_shot_task
from smallfirst.errors import InvalidRequestError
from smallfirst.models.registry import Registry
from smallfirst.tasks import Task
from smallfirst.testing import Script

from .conftest import INTENT_TEMPLATES, intent_pairs

LABELS = list(INTENT_TEMPLATES)


def intent_bank() -> ExampleBank:
    bank = ExampleBank.open("intents")
    bank.set_meta(task={"name": "intents", "kind": "classify", "labels": LABELS})
    bank.add_many([(text, intent, intent) for text, intent in intent_pairs()], teacher="gold")
    return bank


async def test_small_llm_sees_the_nearest_teacher_answers(scripted):
    upstream, url = scripted
    upstream.default = Script(text='{"label": "weather"}')
    small = ModelConfig(name="small", backend="openai", base_url=url, tier="small")
    registry = Registry(Config(models=[small]))
    task = few_shot_task(Task(kind="classify", labels=LABELS), intent_bank(), k=3)
    result = await task.run("is it going to rain in Oslo", model="small", registry=registry)
    assert result.label == "weather"
    prompt = " ".join(str(m["content"]) for m in upstream.received[0]["messages"])
    shown = [text for text, _ in intent_pairs() if text in prompt]
    assert len(shown) == 3
    assert all(text in {t for t, i in intent_pairs() if i == "weather"} for text in shown)
    await registry.aclose()


def test_refuses_a_bank_of_another_task():
    bank = intent_bank()
    with pytest.raises(InvalidRequestError, match="holds 'classify'"):
        few_shot_task(Task(kind="summarize"), bank)
    with pytest.raises(InvalidRequestError, match="labels the task does not know"):
        few_shot_task(Task(kind="classify", labels=["weather", "other"]), bank)
