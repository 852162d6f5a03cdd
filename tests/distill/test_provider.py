from pathlib import Path

import pytest

from smallfirst.config import Config, ModelConfig
from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.student import TinyClassifier, train_from_bank
from smallfirst.embeddings import get_embedder
from smallfirst.errors import ConfigError, DeferredError, InvalidRequestError, ModelLoadError
from smallfirst.models.registry import Registry
from smallfirst.types import ChatRequest, CompletionRequest, Message

from .conftest import intent_pairs


@pytest.fixture(scope="module")
def student_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("student")
    bank = ExampleBank.open(str(folder / "intents.sqlite"), get_embedder("minilm"))
    for text, intent in intent_pairs():
        bank.add(text, intent, label=intent)
    path = folder / "student.joblib"
    train_from_bank(bank, target_accuracy=0.9).save(path)  # 60 pairs: 0.97 is out of reach
    return path


def registry_for(path: Path | str) -> Registry:
    student = ModelConfig(
        name="intent", backend="student", tier="tiny", options={"path": str(path)}
    )
    return Registry(Config(models=[student]))


async def test_answers_confident_requests_with_the_label(student_file):
    registry = registry_for(student_file)
    assert registry.get("intent").tier == "tiny"
    assert registry.get("intent").price.source == "local"
    request = ChatRequest(
        [Message("system", "Classify."), Message("user", "will it rain in Madrid tomorrow")]
    )
    generation = await registry.provider("intent").chat(request)
    assert generation.text == "weather" and generation.finish_reason == "stop"
    assert generation.usage.total_tokens == 0
    assert generation.logprobs and generation.logprobs[0].token == "weather"
    deltas = [d async for d in registry.provider("intent").stream_chat(request)]
    assert [d.text for d in deltas] == ["weather"] and deltas[-1].finish_reason == "stop"
    completion = await registry.provider("intent").complete(
        CompletionRequest("book a table for two in Rome")
    )
    assert completion.text == "restaurant"


async def test_defers_with_a_specific_422_when_unsure(student_file, tmp_path):
    student = TinyClassifier.load(student_file)
    student.threshold = 1.01  # a student that is never sure enough
    strict = tmp_path / "strict.joblib"
    student.save(strict)
    provider = registry_for(strict).provider("intent")
    with pytest.raises(DeferredError) as caught:
        await provider.chat(ChatRequest([Message("user", "what's the weather in Rome")]))
    error = caught.value
    assert error.status == 422 and error.code == "student_deferred"
    assert error.label == "weather" and error.confidence < error.threshold == 1.01
    assert "escalate" in error.message
    assert error.to_openai()["error"]["type"] == "deferred"


async def test_bad_requests_and_files(student_file, tmp_path):
    provider = registry_for(student_file).provider("intent")
    with pytest.raises(InvalidRequestError, match="needs a user message"):
        await provider.chat(ChatRequest([Message("system", "hi")]))
    with pytest.raises(InvalidRequestError, match="empty"):
        await provider.chat(ChatRequest([Message("user", "  ")]))
    with pytest.raises(InvalidRequestError, match="no embeddings"):
        await provider.embed(["x"])
    missing = registry_for(tmp_path / "none.joblib").provider("intent")
    with pytest.raises(ModelLoadError, match="distill student"):
        await missing.chat(ChatRequest([Message("user", "hello")]))
    no_path = Registry(Config(models=[ModelConfig(name="s", backend="student")]))
    with pytest.raises(ConfigError, match=r"options\.path"):
        no_path.provider("s")


async def test_a_task_runs_on_the_student_like_on_any_model(student_file):
    from smallfirst.tasks import Task

    registry = registry_for(student_file)
    task = Task(kind="classify", labels=["weather", "music", "restaurant"])
    result = await task.run("put on the top songs of Madrid", model="intent", registry=registry)
    assert result.label == "music"
    request = ChatRequest([Message("user", "Text: is it sunny in Rome this weekend")])
    assert (await registry.provider("intent").chat(request)).text == "weather"
