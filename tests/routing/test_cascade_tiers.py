"""The full ladder tiny -> small -> medium -> large, with a real distilled student as tier 0."""

from __future__ import annotations

import pytest

from smallfirst.config import Config
from smallfirst.distill.student import train_student
from smallfirst.embeddings import get_embedder
from smallfirst.models.registry import Registry
from smallfirst.routing.cascade import Cascades
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, Message
from tests.routing.upstreams import registry_for, scripted_models

LIKES = ["pizza", "the sea", "my dog", "sunny days", "this song", "the new phone"]


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    texts = [f"I really love {x}" for x in LIKES] + [f"I truly hate {x}" for x in LIKES]
    labels = ["positive"] * len(LIKES) + ["negative"] * len(LIKES)
    student = train_student(get_embedder("minilm").encode(texts), labels, folds=3)
    path = tmp_path_factory.mktemp("student") / "student.joblib"
    student.threshold = 0.5  # answers when it leans one way; defers on near-ties
    student.similarity_threshold = -1.0  # 12 examples: familiarity is tested in tests/distill
    student.save(path)
    return path


def ladder_registry(urls: dict[str, str], student_path) -> Registry:
    base = registry_for(urls, {"small": "small", "medium": "medium", "large": "large"})
    models = [m.model_dump() for m in base.config.models]
    models.insert(
        0,
        {
            "name": "student",
            "backend": "student",
            "tier": "tiny",
            "options": {"path": str(student_path)},
        },
    )
    checks = [{"kind": "constraint", "labels": ["positive", "negative"]}]
    cascade = {"rungs": ["tiny", "small", "medium", "large"], "checks": checks}
    failover = base.config.failover.model_dump()
    return Registry(
        Config.model_validate({"models": models, "cascades": {"s": cascade}, "failover": failover})
    )


async def test_the_ladder_climbs_one_rung_per_reason(student_file):
    with scripted_models("small", "medium", "large") as (upstreams, urls):
        upstreams["small"].default = Script(text="It is lovely!")  # not a label
        upstreams["medium"].default = Script("error", status=503)  # down
        upstreams["large"].default = Script(text="positive")
        cascades = Cascades(ladder_registry(urls, student_file))
        cascade = cascades.get("cascade-s")
        assert cascade.rungs == ["student", "small", "medium", "large"]
        student = cascades.registry.provider("student").student
        student.threshold = 1.01  # nothing is sure enough: the student defers
        result = await cascade.run(ChatRequest([Message("user", "I really love pizza")]))
    assert result.model == "large" and result.verified
    kinds = [(h.kind, h.model, h.outcome) for h in result.hops]
    assert kinds[:3] == [
        ("failure", "student", "deferred"),
        ("escalate", "small", "escalated"),
        ("answer", "small", "ok"),
    ]
    assert ("check", "small", "failed") in kinds
    assert [h for h in kinds if h[1] == "medium" and h[0] == "failure"] == [
        ("failure", "medium", "error")
    ] * 3
    assert kinds[-2:] == [("answer", "large", "ok"), ("accept", "large", "kept")]
    assert result.escalations == 3
    assert not cascades.caller.breaker.is_open("student")  # deferring is not failing


async def test_a_sure_student_answers_for_free(student_file):
    with scripted_models("small", "medium", "large") as (upstreams, urls):
        cascades = Cascades(ladder_registry(urls, student_file))
        result = await cascades.get("s").run(ChatRequest([Message("user", "I truly hate rain")]))
        assert not any(u.received for u in upstreams.values())
    assert result.model == "student" and result.generation.text == "negative"
    assert result.cost_usd == 0 and [h.kind for h in result.hops] == ["answer", "check", "accept"]
