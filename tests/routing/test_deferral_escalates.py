"""A deferral or a failed check climbs to the next rung; only a failure tries the rung's
same-tier fallbacks.

Three real students of one tier (`tiny`) and a scripted teacher: the cascade's rungs are
`[student-a, teacher]`, so student-b and student-c are student-a's same-tier spares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smallfirst.config import Config
from smallfirst.distill.student import train_student
from smallfirst.embeddings import get_embedder
from smallfirst.errors import DeferredError, UpstreamError
from smallfirst.models.registry import Registry
from smallfirst.routing.cascade import Cascades
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, Message
from tests.routing.upstreams import scripted_models

LIKES = ["pizza", "the sea", "my dog", "sunny days", "this song", "the new phone"]
REQUEST = ChatRequest([Message("user", "I really love pizza")])


@pytest.fixture(scope="module")
def student_files(tmp_path_factory) -> dict[str, Path]:
    """`sure` answers everything it is asked; `unsure` defers everything."""
    texts = [f"I really love {x}" for x in LIKES] + [f"I truly hate {x}" for x in LIKES]
    labels = ["positive"] * len(LIKES) + ["negative"] * len(LIKES)
    student = train_student(get_embedder("minilm").encode(texts), labels, folds=3)
    folder = tmp_path_factory.mktemp("students")
    files = {"sure": folder / "sure.joblib", "unsure": folder / "unsure.joblib"}
    student.similarity_threshold = -1.0  # twelve examples calibrate nothing: set by hand
    student.threshold = 0.0
    student.save(files["sure"])
    student.threshold = 1.01
    student.save(files["unsure"])
    files["missing"] = folder / "missing.joblib"  # loading it fails: a broken student
    return files


@pytest.fixture
def teacher():
    with scripted_models("teacher") as (upstreams, urls):
        upstreams["teacher"].default = Script(text="positive")
        yield upstreams["teacher"], urls["teacher"]


def cascades(
    files: dict[str, Path],
    teacher_url: str,
    student_a: str,
    checks: list[dict[str, Any]] | None = None,
    **failover: Any,
) -> Cascades:
    students = {"student-a": files[student_a], "student-b": files["sure"]}
    students["student-c"] = files["sure"]
    models: list[dict[str, Any]] = [
        {"name": name, "backend": "student", "tier": "tiny", "options": {"path": str(path)}}
        for name, path in students.items()
    ]
    models.append(
        {
            "name": "teacher",
            "backend": "openai",
            "base_url": teacher_url,
            "tier": "large",
            "price": {"input": 1.0, "output": 2.0},
        }
    )
    config = Config.model_validate(
        {
            "models": models,
            "cascades": {"intents": {"rungs": ["student-a", "teacher"], "checks": checks or []}},
            "failover": {"retries": 0, "backoff_s": 0.01, **failover},
        }
    )
    return Cascades(Registry(config))


def story(result) -> list[tuple[str, str | None, str]]:
    return [(h.kind, h.model, h.outcome) for h in result.hops]


async def test_a_deferral_goes_up_to_the_teacher_not_to_another_student(student_files, teacher):
    upstream, url = teacher
    result = await cascades(student_files, url, "unsure").get("intents").run(REQUEST)
    assert result.model == "teacher" and result.generation.text == "positive"
    assert story(result) == [
        ("failure", "student-a", "deferred"),
        ("escalate", "teacher", "escalated"),
        ("answer", "teacher", "ok"),
        ("accept", "teacher", "kept"),
    ]
    assert "deferred" in result.hops[1].detail
    assert len(upstream.received) == 1


async def test_a_failed_check_goes_up_to_the_teacher_not_to_another_student(student_files, teacher):
    upstream, url = teacher
    upstream.default = Script(text="neutral")
    only_neutral = [{"kind": "constraint", "labels": ["neutral"]}]  # student-a says positive
    result = await cascades(student_files, url, "sure", only_neutral).get("intents").run(REQUEST)
    assert result.model == "teacher" and result.generation.text == "neutral"
    assert story(result) == [
        ("answer", "student-a", "ok"),
        ("check", "student-a", "failed"),
        ("escalate", "teacher", "escalated"),
        ("answer", "teacher", "ok"),
        ("accept", "teacher", "kept"),
    ]
    assert "failed its checks" in result.hops[2].detail
    assert len(upstream.received) == 1


async def test_a_failing_student_still_falls_back_to_its_tier(student_files, teacher):
    upstream, url = teacher
    result = await cascades(student_files, url, "missing").get("intents").run(REQUEST)
    assert result.model == "student-b" and result.generation.text == "positive"
    assert story(result) == [
        ("failure", "student-a", "error"),
        ("fallback", "student-b", "next_model"),
        ("answer", "student-b", "ok"),
        ("accept", "student-b", "kept"),
    ]
    assert upstream.received == []


async def test_an_empty_fallback_list_disables_the_same_tier_fallback(student_files, teacher):
    upstream, url = teacher
    built = cascades(student_files, url, "missing", fallbacks={"student-a": []})
    cascade = built.get("intents")
    assert cascade.candidates(0) == ["student-a"]
    result = await cascade.run(REQUEST)
    assert result.model == "teacher"
    assert [h.model for h in result.hops if h.model and h.model.startswith("student")] == [
        "student-a"
    ]
    assert len(upstream.received) == 1


async def test_when_every_rung_fails_the_error_names_every_model(student_files, teacher):
    upstream, url = teacher
    upstream.default = Script("error", status=500)
    with pytest.raises(UpstreamError) as info:
        await cascades(student_files, url, "unsure", retries=1).get("intents").run(REQUEST)
    message = info.value.message
    assert info.value.status == 502
    assert "student-a: student 'student-a' is not sure" in message
    assert "teacher: " in message and "(2 attempts)" in message
    assert "student-b" not in message  # a deferral tried no fallback


async def test_a_cascade_of_students_that_all_defer_is_a_422_naming_each(student_files, teacher):
    _, url = teacher
    built = cascades(student_files, url, "unsure")
    config = built.registry.config.model_copy(deep=True)
    config.models[1].options["path"] = str(student_files["unsure"])
    config.cascades["intents"].rungs = ["student-a", "student-b"]
    with pytest.raises(DeferredError) as info:
        await Cascades(Registry(config)).get("intents").run(REQUEST)
    assert info.value.status == 422
    assert "every model deferred" in info.value.message
    assert "student-a:" in info.value.message and "student-b:" in info.value.message
