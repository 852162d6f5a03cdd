"""The student as tier 0 of a real cascade: confident -> answered at $0; unsure -> escalated."""

from pathlib import Path

import pytest

from smallfirst.config import CascadeConfig, Config, ModelConfig, Price
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.student import TinyClassifier, train_from_bank
from smallfirst.embeddings import get_embedder
from smallfirst.models.registry import Registry
from smallfirst.routing.cascade import Cascade
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, Message

from .conftest import intent_pairs


@pytest.fixture(scope="module")
def students(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("rung")
    bank = ExampleBank.open(str(folder / "intents.sqlite"), get_embedder("minilm"))
    bank.add_many([(text, intent, intent) for text, intent in intent_pairs()])
    student = train_from_bank(bank, target_accuracy=0.9)  # 60 pairs: 0.97 is out of reach
    sure, unsure = folder / "sure.joblib", folder / "unsure.joblib"
    student.save(sure)
    student.threshold = 1.01
    student.save(unsure)
    return sure, unsure


def ladder(student_path: Path, url: str) -> Cascade:
    models = [
        ModelConfig(
            name="tiny", backend="student", tier="tiny", options={"path": str(student_path)}
        ),
        ModelConfig(
            name="big", backend="openai", base_url=url, tier="large", price=Price(input=1, output=1)
        ),
    ]
    config = Config(models=models, cascades={"intents": CascadeConfig(rungs=["tiny", "big"])})
    return Cascade("intents", config.cascades["intents"], Registry(config))


REQUEST = ChatRequest([Message("user", "Text: will it rain in Madrid tomorrow")])


async def test_confident_student_answers_without_calling_the_large_model(students, scripted):
    upstream, url = scripted
    result = await ladder(students[0], url).run(REQUEST)
    assert result.model == "tiny" and result.generation.text == "weather"
    assert upstream.received == []
    assert not [hop for hop in result.hops if hop.kind == "escalate"]


async def test_deferral_escalates_to_the_next_rung(students, scripted):
    upstream, url = scripted
    upstream.default = Script(text="weather")
    result = await ladder(students[1], url).run(REQUEST)
    assert result.model == "big" and result.generation.text == "weather"
    assert len(upstream.received) == 1
    deferred = [hop for hop in result.hops if hop.model == "tiny" and hop.outcome == "deferred"]
    assert len(deferred) == 1 and "not sure" in deferred[0].detail  # asked once, not retried
    assert len([hop for hop in result.hops if hop.kind == "escalate"]) == 1
    assert TinyClassifier.load(students[1]).threshold == 1.01
