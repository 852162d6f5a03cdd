"""A JSON extraction task moves to an extraction student: the learner proves it on held-out
large answers, and `model: "auto"` on a live gateway serves its JSON or defers to large."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest

from smallfirst.config import LearnConfig
from smallfirst.distill.extraction_student import ExtractionStudent, train_extraction_student
from smallfirst.learning.learner import learn
from smallfirst.learning.records import Evidence, Policy
from smallfirst.testing import Script

from ..server.gateway_helpers import running_gateway, scripted_config
from .learn_helpers import learn_config, open_store, registry

NOW = 10_000.0
TASK = {"x-smallfirst-task": "slots"}
CITIES = ["paris", "berlin", "tokyo", "lima", "oslo", "rome", "cairo", "quito", "new york"]
TIMES = ["tomorrow", "tonight", "next week", "on friday", "this weekend"]
TEMPLATES = [
    ("what's the weather in {city} {time}", ("city", "time")),
    ("will it rain in {city} {time}", ("city", "time")),
    ("book a table in {city} for {time}", ("city", "time")),
    ("how cold is {city}", ("city",)),
    ("remind me to call mom {time}", ("time",)),
]


def slot_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Templated utterances and the large model's JSON answer (values copied from them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        template, fields = rng.choice(TEMPLATES)
        values = {"city": rng.choice(CITIES), "time": rng.choice(TIMES)}
        answer = {name: values[name] for name in fields}
        out.append((template.format(**values), orjson.dumps(answer).decode()))
    return out


def served_json(task: str, pairs: list[tuple[str, str]]) -> list[Evidence]:
    return [
        Evidence(f"{task}-s{i}", task, "served", "json", text, None, None, "large", answer,
                 None, ts=1000.0 + i)
        for i, (text, answer) in enumerate(pairs)
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    return open_store(tmp_path)


def test_a_json_task_with_enough_large_answers_moves_to_an_extraction_student(store, tmp_path):
    store.add_evidence(served_json("slots", slot_pairs(150)))
    [outcome] = learn(registry(), store, learn_config(target=0.9), now=NOW)
    assert outcome.action == "promoted", outcome.message
    policy = store.current_policies()["slots"]
    assert (policy.serve, policy.rungs, policy.output_kind) == ("student", ["large"], "json")
    assert policy.estimate is not None and policy.estimate.lower >= 0.9
    assert policy.estimate.n == 150  # every pair, each scored by a student that never saw it
    assert policy.share_below_large > 0.5
    assert "extraction student -> large serves" in policy.reason
    path = Path(policy.artifacts["extraction_student"])
    assert "student" not in policy.artifacts and path.parent == tmp_path / "learned"
    [answer] = ExtractionStudent.load(path).predict(["will it rain in oslo tonight"])
    assert orjson.loads(answer.text) == {"city": "oslo", "time": "tonight"}


def test_answers_that_are_not_spans_of_the_input_offer_no_extraction_student(store):
    pairs = [(text, '{"summary": "a request about the weather"}') for text, _ in slot_pairs(80)]
    store.add_evidence(served_json("summaries", pairs))
    [outcome] = learn(registry(), store, learn_config(target=0.9), now=NOW)
    assert outcome.action == "kept" and store.current_policies() == {}
    assert (
        "no extraction student: 0 of 80 large answers are flat objects of strings found in "
        "the input" in outcome.message
    )


@pytest.fixture(scope="module")
def student_file(tmp_path_factory) -> Path:
    pairs = slot_pairs(200)
    student = train_extraction_student(
        [text for text, _ in pairs], [orjson.loads(a) for _, a in pairs], target_accuracy=0.9
    )
    path = tmp_path_factory.mktemp("extraction") / "slots.joblib"
    student.save(path)
    return path


@pytest.fixture
def live(scripted, tmp_path):
    upstream, url = scripted
    config = scripted_config(url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    config.learn = LearnConfig(shadow_rate=0.0, audit_rate=0.0)
    with running_gateway(config) as gw:
        yield gw, upstream


def ask(gw, text: str):
    return gw.client().chat.completions.with_raw_response.create(
        model="auto",
        messages=[
            {"role": "system", "content": "Extract city and time as JSON."},
            {"role": "user", "content": text},
        ],
        response_format={"type": "json_object"},
        extra_headers=TASK,
    )


def test_the_extraction_student_answers_json_and_defers_the_rest_to_large(live, student_file):
    gw, upstream = live
    learning = gw.gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    learning.store.save_policy(
        Policy("slots", 0, "student", ["large"], "proven", 0.9, output_kind="json",
               artifacts={"extraction_student": str(student_file)}, audit_rate=0.05)
    )  # fmt: skip
    asyncio.run(learning.policies.refresh())
    sure = ask(gw, "book a table in Berlin for next week")
    assert orjson.loads(sure.parse().choices[0].message.content) == {
        "city": "Berlin",
        "time": "next week",
    }
    assert sure.headers["x-smallfirst-tier"] == "tiny"
    assert sure.headers["x-smallfirst-route-reason"].startswith(
        'learned slots v1: extraction student answered {"city":"Berlin","time":"next week"}'
    )
    assert upstream.received == []  # answered at $0, nothing sent upstream
    upstream.default = Script(text='{"topic": "proof"}')
    unsure = ask(gw, "explain the proof of Fermat's last theorem in detail")
    assert unsure.parse().choices[0].message.content == '{"topic": "proof"}'
    assert unsure.headers["x-smallfirst-model"] == "large"
    reason = unsure.headers["x-smallfirst-route-reason"]
    assert reason.startswith("learned slots v1: extraction student deferred (unfamiliar input")
    assert "on large" in reason
    rows = {row["tier"]: row for row in gw.rows(kind="request")}
    assert rows["tiny"]["cost_usd"] == 0.0 and rows["large"]["cost_usd"] > 0


def test_a_schema_field_the_student_did_not_find_defers_to_large(live, student_file):
    """`response_format: json_schema` requiring `time`: an answer without it is no answer."""
    gw, upstream = live
    learning = gw.gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    learning.store.save_policy(
        Policy("slots", 0, "student", ["large"], "proven", 0.9, output_kind="json",
               artifacts={"extraction_student": str(student_file)})
    )  # fmt: skip
    asyncio.run(learning.policies.refresh())
    upstream.default = Script(text='{"city": "Oslo", "time": "now"}')
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "time": {"type": "string"}},
        "required": ["city", "time"],
    }
    raw = gw.client().chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "how cold is oslo"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        extra_headers=TASK,
    )
    assert raw.headers["x-smallfirst-model"] == "large"
    assert raw.headers["x-smallfirst-route-reason"].startswith(
        "learned slots v1: extraction student deferred (the schema requires 'time'), served"
    )


def test_an_unreadable_extraction_student_file_is_passed_over_to_large(live, tmp_path):
    gw, upstream = live
    learning = gw.gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a joblib file")
    learning.store.save_policy(
        Policy("slots", 0, "student", ["large"], "proven", 0.9, output_kind="json",
               artifacts={"extraction_student": str(broken)})
    )  # fmt: skip
    asyncio.run(learning.policies.refresh())
    upstream.default = Script(text='{"city": "Oslo"}')
    raw = ask(gw, "how cold is oslo")
    assert raw.parse().choices[0].message.content == '{"city": "Oslo"}'
    assert raw.headers["x-smallfirst-route-reason"] == (
        "learned slots v1: student file unreadable, served on large"
    )
