"""Tasks on the embedded Gemma 3 270M: constrained output always parses (a few short calls)."""

import pytest
from pydantic import BaseModel

from smallfirst.errors import ConfigError
from smallfirst.tasks import ClassifyResult, ExtractResult, Task

LABELS = {"negative": "unhappy", "neutral": "no feeling", "positive": "happy"}
EXAMPLES = [
    {"input": "I hate this", "output": "negative"},
    {"input": "Best day ever!", "output": "positive"},
]


class City(BaseModel):
    city: str | None = None


async def test_classify_generate_always_returns_a_listed_label(embedded_registry):
    task = Task(kind="classify", labels=LABELS, examples=EXAMPLES, max_tokens=4)
    for text in ["I love this phone", "asdf qwerty 123"]:
        result = await task.run(text, registry=embedded_registry)
        assert isinstance(result, ClassifyResult)
        assert result.label in LABELS and result.attempts == 1
        assert 0.0 < result.confidence <= 1.0
    await embedded_registry.aclose()


async def test_classify_score_gives_a_distribution_over_labels(embedded_registry):
    task = Task(kind="classify", labels=LABELS, examples=EXAMPLES, method="score")
    result = await task.run("What a wonderful surprise!", registry=embedded_registry)
    assert set(result.scores) == set(LABELS)
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert result.label == max(result.scores, key=result.scores.get)
    assert result.confidence == pytest.approx(result.scores[result.label])
    await embedded_registry.aclose()


async def test_extract_returns_a_valid_pydantic_instance(embedded_registry):
    task = Task(kind="extract", schema=City, max_tokens=24)
    result = await task.run("The weather in Paris tomorrow", registry=embedded_registry)
    assert isinstance(result, ExtractResult) and isinstance(result.data, City)
    await embedded_registry.aclose()


def test_from_yaml_with_a_pydantic_model_path(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text("kind: extract\npydantic_model: tests.tasks.test_task:City\n")
    task = Task.from_yaml(spec)
    assert task.output_model is City and task.schema == City.model_json_schema()
    spec.write_text("kind: extract\npydantic_model: tests.tasks.test_task:Nope\n")
    with pytest.raises(ConfigError, match="pydantic_model: cannot import"):
        Task.from_yaml(spec)
