"""`model: "auto"` on a live gateway with `learn: {}`: cold start on large, then a saved
policy's student answers what it is sure of and defers the rest up to large."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import anthropic
import pytest

from smallfirst.config import CapabilitiesConfig, LearnConfig, RulesRouterConfig
from smallfirst.distill.student import train_student
from smallfirst.embeddings import get_embedder
from smallfirst.learning.learner import learn
from smallfirst.learning.records import Policy
from smallfirst.server import Gateway
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, Message

from ..server.gateway_helpers import running_gateway, scripted_config
from .learn_helpers import intent_pairs

TASK = {"x-smallfirst-task": "intents"}


@pytest.fixture(scope="module")
def student_file(tmp_path_factory) -> Path:
    """A tiny MiniLM student trained on 120 labelled intents (seconds)."""
    pairs = intent_pairs()
    embedder = get_embedder("minilm")
    student = train_student(
        embedder.encode([text for text, _ in pairs]),
        [label for _, label in pairs],
        target_accuracy=0.9,
        embedder_name=embedder.name,
    )
    path = tmp_path_factory.mktemp("student") / "intents.joblib"
    student.save(path)
    return path


@pytest.fixture
def live(scripted, tmp_path):
    upstream, url = scripted
    upstream.default = Script(text="weather")
    config = scripted_config(url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    config.learn = LearnConfig(shadow_rate=0.0, audit_rate=0.0)
    with running_gateway(config) as gw:
        yield gw, upstream


def ask(gw, text: str, **options):
    return gw.client().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], extra_headers=TASK, **options
    )


def save_student_policy(gw, path: Path) -> Policy:
    learning = gw.gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    policy = learning.store.save_policy(
        Policy("intents", 0, "student", ["large"], "proven", 0.9, artifacts={"student": str(path)},
               audit_rate=0.05)
    )  # fmt: skip
    asyncio.run(learning.policies.refresh())
    return policy


def test_cold_start_serves_on_large_and_names_the_policy(live):
    gw, upstream = live
    raw = ask(gw, "will it rain in Madrid tomorrow")
    assert raw.parse().choices[0].message.content == "weather"
    assert raw.headers["x-smallfirst-model"] == "large"
    reason = raw.headers["x-smallfirst-route-reason"]
    assert reason == "learned intents v0: cold start on large, shadowing small"
    assert [body["model"] for body in upstream.received] == ["up-large"]
    [row] = gw.rows(kind="request")
    assert (row["task"], row["tier"], row["route_reason"]) == ("intents", "large", reason)


def test_a_student_policy_answers_sure_inputs_and_defers_the_rest_to_large(live, student_file):
    gw, upstream = live
    save_student_policy(gw, student_file)
    sure = ask(gw, "what's the weather in Paris")
    assert sure.parse().choices[0].message.content == "weather"
    assert sure.headers["x-smallfirst-tier"] == "tiny"
    assert sure.headers["x-smallfirst-model"] == "learned-intents-v1"
    assert sure.headers["x-smallfirst-route-reason"].startswith(
        "learned intents v1: student answered 'weather'"
    )
    assert upstream.received == []  # answered at $0, nothing sent upstream
    upstream.default = Script(text="none of these")
    unsure = ask(gw, "explain the proof of Fermat's last theorem in detail")
    assert unsure.parse().choices[0].message.content == "none of these"
    assert unsure.headers["x-smallfirst-model"] == "large"
    reason = unsure.headers["x-smallfirst-route-reason"]
    assert reason.startswith("learned intents v1: student deferred (") and "on large" in reason
    rows = {row["tier"]: row for row in gw.rows(kind="request")}
    assert rows["tiny"]["cost_usd"] == 0.0 and rows["large"]["cost_usd"] > 0


def test_a_student_answer_streams(live, student_file):
    gw, upstream = live
    save_student_policy(gw, student_file)
    stream = gw.client().chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "play some jazz from Lima"}],
        extra_headers=TASK,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "music" and upstream.received == []


def test_a_field_only_pass_through_honours_skips_the_student(live, student_file):
    """A student cannot honour `frequency_penalty`; the large model, by pass-through, can."""
    gw, upstream = live
    save_student_policy(gw, student_file)
    raw = ask(gw, "what's the weather in Paris", frequency_penalty=0.5)
    assert raw.headers["x-smallfirst-model"] == "large"
    assert "student skipped" in raw.headers["x-smallfirst-route-reason"]
    assert upstream.received[0]["frequency_penalty"] == 0.5


def test_personal_data_kept_local_by_routers_auto_is_not_served_by_the_policy(scripted, tmp_path):
    """`routers.auto`'s personal-data rule still decides first under `learn:`."""
    upstream, url = scripted
    config = scripted_config(url, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    config.models[1].capabilities = CapabilitiesConfig(local=False)  # large is remote
    config.routers = {"auto": RulesRouterConfig(kind="rules", local_model="small")}
    config.learn = LearnConfig(shadow_rate=0.0)
    with running_gateway(config) as gw:
        raw = ask(gw, "my card is 4111 1111 1111 1111, which intent is this")
        assert raw.headers["x-smallfirst-model"] == "small"
        assert raw.headers["x-smallfirst-route-reason"].startswith("learned intents v0: rule: pii")
        plain = ask(gw, "will it rain in Oslo")
        assert plain.headers["x-smallfirst-model"] == "large"  # cold start, as without the rule
    assert [body["model"] for body in upstream.received] == ["up-small", "up-large"]


def test_the_student_answers_on_the_messages_api_too(live, student_file):
    gw, upstream = live
    save_student_policy(gw, student_file)
    client = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="auto",
        max_tokens=16,
        messages=[{"role": "user", "content": "book a table for two in Rome"}],
        extra_headers=TASK,
    )
    assert raw.parse().content[0].text == "restaurant"
    assert raw.headers["x-smallfirst-tier"] == "tiny" and upstream.received == []


def test_the_loop_large_answers_teach_a_student_that_then_serves(live):
    """Served on large at cold start, the large answers kept as evidence, one learning pass,
    and the next request of the task is answered by the student it trained."""
    gw, upstream = live
    system = {"role": "system", "content": "Name the intent: weather, music or restaurant."}
    pairs = intent_pairs()
    upstream.enqueue(*(Script(text=label) for _, label in pairs))
    client = gw.client()
    for text, _ in pairs:
        client.chat.completions.create(
            model="auto",
            messages=[system, {"role": "user", "content": text}],
            extra_headers=TASK,
        )
    learning = gw.gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    store = learning.store
    for _ in range(500):  # the evidence is written off the response path, in batches
        if len(store.evidence("intents", sources=["served"])) == len(pairs):
            break
        time.sleep(0.01)
    served = store.evidence("intents", sources=["served"])
    assert len(served) == len(pairs) and {e.output_kind for e in served} == {"label"}
    config = learning.config.model_copy(update={"min_evidence": 40, "target": 0.8})
    [outcome] = learn(gw.gateway.registry, store, config)
    assert outcome.action == "promoted", outcome.message
    asyncio.run(learning.policies.refresh())
    sent = len(upstream.received)
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[system, {"role": "user", "content": "is it sunny in Lima this weekend"}],
        extra_headers=TASK,
    )
    assert raw.parse().choices[0].message.content == "weather"
    assert raw.headers["x-smallfirst-tier"] == "tiny" and len(upstream.received) == sent


@pytest.fixture
async def gateway(tmp_path):
    config = scripted_config("http://127.0.0.1:9/v1")
    config.learn = LearnConfig()
    gateway = Gateway(config, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    await gateway.start()
    yield gateway
    await gateway.stop()


async def route_by(gateway: Gateway, policy: Policy, text: str = "play jazz"):
    learning = gateway.learning
    assert learning is not None and learning.store is not None and learning.policies
    learning.store.save_policy(policy)
    await learning.policies.refresh()
    auto = gateway.targets.resolve("auto")
    return await auto.aroute(ChatRequest([Message("user", text)], task="intents"))


async def test_a_rung_no_longer_configured_is_passed_over_up_to_large(gateway):
    route = await route_by(gateway, Policy("intents", 0, "small", ["gone"], "old", 0.95))
    assert route.model.name == "large" and route.decision is not None
    assert (
        route.decision.reason
        == "learned intents v1: small policy on large (gone is not configured)"
    )


async def test_an_unreadable_student_file_serves_on_the_next_rung(gateway, tmp_path, caplog):
    (tmp_path / "broken.joblib").write_text("not a student")
    policy = Policy("intents", 0, "student", ["large"], "proven", 0.9,
                    artifacts={"student": str(tmp_path / "broken.joblib")})  # fmt: skip
    route = await route_by(gateway, policy)
    assert route.model.name == "large" and route.decision is not None
    assert route.decision.reason == "learned intents v1: student file unreadable, served on large"
    assert "cannot load the student of intents v1" in caplog.text
