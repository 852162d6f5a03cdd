"""End to end on real providers: replay models (gold labels at a set accuracy and price),
a scripted OpenAI-compatible server (constant answers, injected failures) and, briefly, the
embedded model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from smallfirst.config import Config, FailoverConfig, ModelConfig, Price
from smallfirst.errors import InvalidRequestError, ModelNotFoundError
from smallfirst.evaluate.adapters import build_candidates, load_task
from smallfirst.evaluate.data import Example
from smallfirst.evaluate.evaluation import EXIT_NO_CANDIDATE, EvalSettings, evaluate
from smallfirst.models.registry import Registry
from smallfirst.testing.scripted import Script

ITEMS = [
    ("I love this phone, best purchase ever", "positive"),
    ("Worst service I have ever had", "negative"),
    ("The meeting is at 3pm on Tuesday", "neutral"),
    ("Absolutely fantastic concert last night", "positive"),
    ("My flight got cancelled again, furious", "negative"),
    ("The report has twelve pages", "neutral"),
] * 5
TASK_YAML = """
kind: classify
name: sentiment
input_name: Text
labels: [negative, neutral, positive]
few_shot: {mode: none}
max_tokens: 4
"""


def write_task(tmp_path: Path) -> tuple[Path, list[Example]]:
    path = tmp_path / "task.yaml"
    path.write_text(TASK_YAML)
    examples = [Example(f"{text} #{i}", label) for i, (text, label) in enumerate(ITEMS)]
    with (tmp_path / "outcomes.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "label"])
        writer.writerows((e.input, e.expected) for e in examples)
    return path, examples


def replay(name: str, tmp_path: Path, accuracy: float, price: float, **options) -> ModelConfig:
    return ModelConfig(
        name=name,
        backend="replay",
        tier="large" if price > 1 else "small",
        price=Price(input=price, output=price * 4),
        options={"outcomes": str(tmp_path / "outcomes.csv"), "accuracy": accuracy, **options},
    )


async def run_eval(registry, task_path, examples, names, threshold=0.8, metric="accuracy"):
    task = load_task(task_path)
    candidates = build_candidates(task, names, registry)
    settings = EvalSettings(metric=metric, threshold=threshold, resamples=300)
    try:
        return await evaluate("sentiment", "classify", candidates, examples, settings, registry)
    finally:
        await registry.aclose()


async def test_cheapest_candidate_that_passes_wins(tmp_path):
    task_path, examples = write_task(tmp_path)
    registry = Registry(
        Config(
            models=[
                replay("big", tmp_path, 1.0, 5.0),
                replay("small", tmp_path, 1.0, 0.1),
                replay("sloppy", tmp_path, 0.5, 0.0),
            ]
        )
    )
    report = await run_eval(registry, task_path, examples, ["big", "small", "sloppy"])
    by_name = {r.name: r for r in report.results}
    assert by_name["big"].metrics["accuracy"].value == 1.0
    assert by_name["sloppy"].metrics["accuracy"].high < 0.8
    assert report.recommendation.winner == "small"
    assert report.exit_code == 0
    top = report.recommendation.comparisons[0]
    assert top.other == "big" and top.cost_ratio == pytest.approx(50.0)
    assert by_name["small"].usd_per_1k > 0
    assert by_name["small"].models_used() == {"small": len(ITEMS)}
    data = report.to_json()
    json.dumps(data)
    assert data["recommendation"]["winner"] == "small"
    assert data["candidates"][0]["predictions"][0]["output"] == "positive"


async def test_nobody_meets_the_bar_gives_exit_code_2(tmp_path):
    task_path, examples = write_task(tmp_path)
    registry = Registry(Config(models=[replay("sloppy", tmp_path, 0.5, 0.0)]))
    report = await run_eval(registry, task_path, examples, ["sloppy"])
    assert report.recommendation.winner is None
    assert report.exit_code == EXIT_NO_CANDIDATE


async def test_failures_are_counted_and_score_as_wrong(tmp_path):
    task_path, examples = write_task(tmp_path)
    flaky = replay("flaky", tmp_path, 1.0, 0.1, error_rate=0.3)
    registry = Registry(Config(models=[flaky], failover=FailoverConfig(retries=0)))
    report = await run_eval(registry, task_path, examples, ["flaky"], threshold=0.5)
    result = report.results[0]
    assert 0 < result.error_count < len(ITEMS)
    answered = len(ITEMS) - result.error_count
    assert result.metrics["accuracy"].value == pytest.approx(answered / len(ITEMS))
    assert "injected upstream failure" in report.to_json()["candidates"][0]["first_error"]


async def test_scripted_openai_model_constant_answer_and_http_errors(tmp_path, scripted):
    upstream, base_url = scripted
    upstream.default = Script(text='{"label": "positive"}', prompt_tokens=50, completion_tokens=5)
    upstream.enqueue(*[Script("error", status=400)] * 3)
    task_path, examples = write_task(tmp_path)
    model = ModelConfig(
        name="scripted", backend="openai", base_url=base_url, price=Price(input=1.0, output=2.0)
    )
    registry = Registry(Config(models=[model]))
    report = await run_eval(registry, task_path, examples, ["scripted"], threshold=0.1)
    result = report.results[0]
    assert result.error_count == 3
    positives = sum(
        1
        for e, p in zip(examples, result.predictions, strict=True)
        if p and e.expected == "positive"
    )
    assert result.metrics["accuracy"].value == pytest.approx(positives / len(ITEMS))
    assert result.usd_per_1k == pytest.approx(1000 * (50 * 1.0 + 5 * 2.0) / 1e6)
    assert result.mean_tokens() == (50.0, 5.0)


async def test_router_names_are_candidates(tmp_path):
    task_path, examples = write_task(tmp_path)
    registry = Registry(Config(models=[replay("only", tmp_path, 1.0, 0.1)]))
    report = await run_eval(registry, task_path, examples[:6], ["auto"], threshold=0.1)
    assert report.results[0].name == "auto"
    assert report.results[0].models_used() == {"only": 6}


@pytest.mark.slow
async def test_embedded_model_runs_the_task(tmp_path, embedded_registry):
    task_path, examples = write_task(tmp_path)
    report = await run_eval(
        embedded_registry, task_path, examples[:3], ["gemma-3-270m"], threshold=0.0
    )
    result = report.results[0]
    assert result.error_count == 0
    assert all(p.output in {"negative", "neutral", "positive"} for p in result.finished)
    assert result.usd_per_1k == 0.0
    assert result.mean_tokens()[0] > 10
    assert report.recommendation.winner == "gemma-3-270m"


async def test_cascade_escalates_and_is_charged_for_every_hop(tmp_path, scripted):
    upstream, base_url = scripted
    upstream.default = Script(text="banana", prompt_tokens=40, completion_tokens=2)
    task_path, examples = write_task(tmp_path)
    cheap = ModelConfig(
        name="cheap", backend="openai", base_url=base_url, price=Price(input=1.0, output=1.0)
    )
    config = Config(
        models=[cheap, replay("exact", tmp_path, 1.0, 5.0)],
        cascades={
            "ladder": {
                "rungs": ["cheap", "exact"],
                "checks": [{"kind": "constraint", "labels": ["negative", "neutral", "positive"]}],
            }
        },
    )
    registry = Registry(config)
    report = await run_eval(
        registry, task_path, examples[:6], ["cascade-ladder", "exact"], threshold=0.5
    )
    cascade, exact = report.results
    assert cascade.error_count == 0
    assert cascade.metrics["accuracy"].value == 1.0
    assert cascade.models_used() == {"exact": 6}
    # the failed cheap answer is paid for on top of the large model's answer
    assert cascade.usd_per_1k == pytest.approx(exact.usd_per_1k + 1000 * 42 / 1e6)
    assert cascade.mean_tokens()[0] == pytest.approx(exact.mean_tokens()[0] + 40)
    assert report.recommendation.winner == "exact"


async def test_unknown_candidate_names_the_options(tmp_path):
    task_path, _ = write_task(tmp_path)
    registry = Registry(Config(models=[replay("only", tmp_path, 1.0, 0.1)]))
    with pytest.raises(ModelNotFoundError, match="cascades: none") as info:
        build_candidates(load_task(task_path), ["only", "cascade-nope"], registry)
    assert info.value.status == 404
    with pytest.raises(InvalidRequestError, match="named twice"):
        build_candidates(load_task(task_path), ["only", "only"], registry)


@pytest.fixture(scope="module")
def student_files(tmp_path_factory) -> dict[str, Path]:
    """MiniLM students trained on the sentiment items: one that answers everything, one that
    is never sure, and one whose threshold is its median confidence (it defers about half)."""
    from smallfirst.distill.student import train_student
    from smallfirst.embeddings import get_embedder

    texts = [f"{text} #{i}" for i, (text, _) in enumerate(ITEMS)]
    vectors = get_embedder("minilm").encode(texts)
    student = train_student(vectors, [label for _, label in ITEMS], target_accuracy=0.9)
    folder = tmp_path_factory.mktemp("student")
    student.similarity_threshold = -1.0  # confidence alone decides here
    student.threshold = 0.0
    student.save(folder / "sure.joblib")
    student.threshold = 1.01
    student.save(folder / "unsure.joblib")
    student.temperature = 5.0  # softer than fitted: confidences spread below 1.0
    confidences = sorted(p.confidence for p in student.predict_vectors(vectors))
    student.threshold = confidences[len(confidences) // 2]
    student.save(folder / "half.joblib")
    return {name: folder / f"{name}.joblib" for name in ("sure", "unsure", "half")}


def student_config(name: str, path: Path, tier: str = "tiny") -> ModelConfig:
    return ModelConfig(name=name, backend="student", tier=tier, options={"path": str(path)})


async def test_students_alone_and_as_the_first_rung_of_a_cascade(tmp_path, student_files):
    task_path, examples = write_task(tmp_path)
    config = Config(
        models=[
            student_config("sure", student_files["sure"], "small"),
            student_config("unsure", student_files["unsure"]),
            replay("exact", tmp_path, 1.0, 5.0),
        ],
        cascades={"a": {"rungs": ["sure", "exact"]}, "b": {"rungs": ["unsure", "exact"]}},
    )
    names = ["sure", "unsure", "exact", "cascade-a", "cascade-b"]
    report = await run_eval(Registry(config), task_path, examples, names, threshold=0.8)
    by_name = {r.name: r for r in report.results}
    sure, unsure, ladder_a, ladder_b = (by_name[n] for n in ("sure", "unsure", *names[3:]))
    n = len(ITEMS)
    assert sure.metrics["accuracy"].value == 1.0 and sure.usd_per_1k == 0.0
    assert sure.models_used() == {"sure": n} and sure.coverage is None
    # a student that is never sure defers everything: no answers, no errors, coverage 0
    assert unsure.error_count == 0 and unsure.deferred_count == n
    assert unsure.coverage.value == 0 and unsure.coverage.high < 0.15
    assert ladder_a.models_used() == {"sure": n} and ladder_a.usd_per_1k == 0.0
    assert ladder_b.models_used() == {"exact": n} and ladder_b.metrics["accuracy"].value == 1.0
    # the composite is the configured cascade b, built from predictions already made
    composite = by_name["unsure, then exact"]
    assert composite.parts == ("unsure", "exact") and composite.models_used() == {"exact": n}
    assert composite.usd_per_1k == pytest.approx(by_name["exact"].usd_per_1k)
    assert report.recommendation.winner in {"sure", "cascade-a"}


async def test_a_student_that_defers_is_scored_on_what_it_answers(tmp_path, student_files):
    task_path, examples = write_task(tmp_path)
    config = Config(
        models=[
            student_config("half", student_files["half"]),
            replay("exact", tmp_path, 1.0, 5.0),
            replay("coin", tmp_path, 0.5, 0.1),
        ]
    )
    report = await run_eval(Registry(config), task_path, examples, ["half", "exact", "coin"])
    by_name = {r.name: r for r in report.results}
    half, n = by_name["half"], len(ITEMS)
    answered = n - half.deferred_count
    assert 0 < answered < n and half.error_count == 0
    assert half.coverage.value == pytest.approx(answered / n)
    assert half.coverage.low < answered / n < half.coverage.high
    # its deferrals are not wrong answers: accuracy is of the answered items only
    assert half.metrics["accuracy"].value == 1.0
    assert half.metrics["accuracy"].low > 0.7  # Wilson on `answered` items, not on n
    composite = by_name["half, then exact"]
    assert composite.metrics["accuracy"].value == 1.0 and composite.coverage is None
    assert composite.models_used() == {"half": answered, "exact": n - answered}
    escalated = [
        big.cost_usd
        for mine, big in zip(half.predictions, by_name["exact"].predictions, strict=True)
        if mine.deferred
    ]
    assert composite.usd_per_1k == pytest.approx(1000 * sum(escalated) / n)  # $0 student
    assert "half, then coin" in by_name
    # the student alone cannot win (it leaves inputs unanswered); "half, then exact" can
    assert report.recommendation.winner == "half, then exact"
    assert report.recommendation.winner_rungs == ["half", "exact"]
    data = report.to_json(include_predictions=True)
    row = next(c for c in data["candidates"] if c["name"] == "half")
    assert row["metrics_of"] == "answered" and row["deferred"] == n - answered
    assert row["coverage"]["method"] == "wilson"
    assert sum(1 for p in row["predictions"] if p.get("deferred")) == n - answered
