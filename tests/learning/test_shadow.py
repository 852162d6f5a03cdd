"""Shadow and audit calls on a live gateway: two scripted upstreams as `small` and `large`
(and one as the judge), a real SQLite ledger, the openai SDK as the client. The upstreams
listen on loopback but are declared not `local`: they stand in for cloud models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from smallfirst.config import (
    CascadeConfig,
    CheckConfig,
    Config,
    FailoverConfig,
    LearnConfig,
    ModelConfig,
    Price,
)
from smallfirst.learning import shadow
from smallfirst.learning.records import Evidence, Policy
from smallfirst.learning.shadow import HOPS, Served
from smallfirst.learning.store import LearningStore
from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.rollups import hop_totals
from smallfirst.ledger.store import LedgerStore
from smallfirst.testing import BackgroundServer, Script, ScriptedUpstream
from smallfirst.types import ChatRequest, Message, ToolCall
from tests.server.gateway_helpers import RunningGateway, running_gateway

PRICES = {"small": Price(input=1.0, output=2.0), "large": Price(input=10.0, output=30.0),
          "judge": Price(input=5.0, output=15.0)}  # fmt: skip
CLASSIFY = "Classify the banking query into one intent label. Answer with the label only."
TASK = {"x-smallfirst-task": "intents"}


@dataclass
class Upstream:
    script: ScriptedUpstream
    url: str

    def reply(self, text: str, **script: Any) -> None:
        self.script.default = Script(text=text, **script)


@pytest.fixture
def upstreams() -> Iterator[dict[str, Upstream]]:
    """One real scripted server per model, so each test sees what reached which model."""
    servers = {name: ScriptedUpstream() for name in PRICES}
    quick = {"timeout_graceful_shutdown": 0.2}  # a hanging script need not end first
    with (
        BackgroundServer(servers["small"].app, **quick) as small,
        BackgroundServer(servers["large"].app, **quick) as large,
        BackgroundServer(servers["judge"].app, **quick) as judge,
    ):
        urls = {"small": small.url, "large": large.url, "judge": judge.url}
        yield {name: Upstream(servers[name], urls[name] + "/v1") for name in PRICES}


def config(
    upstreams: dict[str, Upstream],
    tmp_path: Path,
    *,
    local_small: bool = False,
    small_timeout_s: float = 2.0,
    **learn: Any,
) -> Config:
    def model(name: str, tier: str, **extra: Any) -> ModelConfig:
        fields = {"timeout_s": 2.0, "capabilities": {"local": False}, **extra}
        return ModelConfig(name=name, backend="openai", base_url=upstreams[name].url,
                           upstream_model=f"up-{name}", tier=tier, price=PRICES[name],
                           **fields)  # fmt: skip

    small = {"timeout_s": small_timeout_s, "capabilities": {"local": local_small}}
    ladder = CascadeConfig(
        rungs=["small", "large"], checks=[CheckConfig(kind="constraint", labels=["ok"])]
    )
    models = [model("small", "small", **small), model("large", "large"), model("judge", "large")]
    return Config(
        failover=FailoverConfig(retries=0, fallbacks={"small": [], "large": [], "judge": []}),
        models=models,
        baseline_model="large",
        cascades={"ladder": ladder},
        learn=LearnConfig(**{"shadow_rate": 1.0, "audit_rate": 0.0, **learn}),
        server={"ledger_url": f"sqlite:///{tmp_path / 'ledger.db'}"},
    )


def drain(running: RunningGateway) -> None:
    """Wait for the gateway's shadow work (on its own loop), then for its ledger rows."""
    shadower = running.gateway.learning.shadower
    if shadower.loop is not None:
        asyncio.run_coroutine_threadsafe(shadower.drain(), shadower.loop).result(timeout=30)
    running.ledger.flush()


def evidence(running: RunningGateway, **where: Any) -> list[Evidence]:
    found = running.gateway.learning.store.evidence()
    return [e for e in found if all(getattr(e, k) == v for k, v in where.items())]


def ask(running: RunningGateway, model: str, prompt: str, api_key: str = "unused", **kw: Any):
    return running.client(api_key).chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": CLASSIFY}, {"role": "user", "content": prompt}],
        extra_headers=TASK,
        **kw,
    )


def wait_until(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def learning_hops(running: RunningGateway) -> list[dict[str, Any]]:
    return [row for row in running.rows(kind="hop") if row["step"] in HOPS]


# -- served by large: kept, and shadowed ------------------------------------------------------


def test_served_large_is_kept_and_the_small_model_is_shadowed(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost", prompt_tokens=20, completion_tokens=2)
    upstreams["small"].reply("Card_Lost.", prompt_tokens=20, completion_tokens=3)
    with running_gateway(config(upstreams, tmp_path)) as running:
        answer = ask(running, "large", "I lost my card")
        drain(running)
        assert answer.choices[0].message.content == "card_lost"
        served = evidence(running, source="served")
        shadow = evidence(running, source="shadow")
        [request] = running.rows(kind="request")
        hops = learning_hops(running)
    assert len(served) == 1 and served[0].large_answer == "card_lost"
    assert (served[0].task, served[0].input, served[0].output_kind) == (
        "intents", "I lost my card", "label"
    )  # fmt: skip
    assert served[0].cost_usd == 0.0  # the client paid for it: free evidence
    [row] = shadow
    assert (row.small_model, row.small_answer, row.large_model) == ("small", "Card_Lost.", "large")
    assert (row.agree, row.score) == (True, 1.0)
    assert row.cost_usd == pytest.approx((20 * 1.0 + 3 * 2.0) / 1e6)
    [hop] = hops
    assert (hop["request_id"], hop["hop"], hop["step"], hop["outcome"]) == (
        request["request_id"], HOPS["shadow"], "shadow", "ok"
    )  # fmt: skip
    assert (hop["model"], hop["tier"], hop["input_tokens"], hop["output_tokens"]) == (
        "small", "small", 20, 3
    )  # fmt: skip
    assert hop["cost_usd"] == pytest.approx(row.cost_usd)
    assert request["cost_usd"] == pytest.approx((20 * 10.0 + 2 * 30.0) / 1e6)  # large only
    assert upstreams["small"].script.received[0]["messages"][1]["content"] == "I lost my card"


def test_a_tasks_own_shadow_rate_applies_to_it_alone(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    upstreams["small"].reply("card_lost")
    own = {"intents": {"shadow_rate": 0.0}}
    with running_gateway(config(upstreams, tmp_path, tasks=own)) as running:
        ask(running, "large", "I lost my card")
        running.client().chat.completions.create(
            model="large",
            messages=[{"role": "system", "content": CLASSIFY}, {"role": "user", "content": "lost"}],
            extra_headers={"x-smallfirst-task": "other"},
        )
        drain(running)
        shadowed = {row.task for row in evidence(running, source="shadow")}
    assert shadowed == {"other"}  # the learn: rate of 1.0, but not for intents


def test_a_disagreeing_small_answer_is_evidence_against_it(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    upstreams["small"].reply("card_arrival")
    with running_gateway(config(upstreams, tmp_path)) as running:
        ask(running, "large", "I lost my card")
        drain(running)
        [row] = evidence(running, source="shadow")
    assert (row.agree, row.score) == (False, 0.0)
    assert "card_arrival" in row.detail


def test_tool_calls_are_kept_and_compared_by_name_and_arguments(upstreams, tmp_path) -> None:
    call = ToolCall("c1", "block_card", '{"card": "debit", "reason": "lost"}')
    same = ToolCall("x9", "block_card", '{"reason": "lost", "card": "debit"}')
    upstreams["large"].reply("", tool_calls=[call])
    upstreams["small"].reply("", tool_calls=[same])
    tools = [{"type": "function", "function": {"name": "block_card", "parameters": {}}}]
    with running_gateway(config(upstreams, tmp_path)) as running:
        answer = ask(running, "large", "I lost my debit card", tools=tools)
        drain(running)
        [served] = evidence(running, source="served")
        [shadow] = evidence(running, source="shadow")
    assert answer.choices[0].message.tool_calls[0].function.name == "block_card"
    assert served.output_kind == "tool_calls"
    assert orjson.loads(served.large_answer) == [
        {"name": "block_card", "arguments": '{"card": "debit", "reason": "lost"}'}
    ]
    assert shadow.agree is True and shadow.output_kind == "tool_calls"


def test_a_streamed_answer_is_kept_too(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card lost")
    upstreams["small"].reply("card lost")
    with running_gateway(config(upstreams, tmp_path)) as running:
        chunks = list(ask(running, "large", "I lost my card", stream=True))
        drain(running)
        [served] = evidence(running, source="served")
        [shadow] = evidence(running, source="shadow")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "card lost"
    assert served.large_answer == "card lost" and shadow.agree is True


# -- the client's answer, time and money are untouched ----------------------------------------


def test_a_hanging_shadow_never_holds_the_client(upstreams, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(shadow, "MAX_IN_FLIGHT", 1)
    upstreams["large"].reply("card_lost")
    upstreams["small"].script.default = Script("hang", delay_s=30)
    with running_gateway(config(upstreams, tmp_path, small_timeout_s=30)) as running:
        answer = ask(running, "large", "I lost my card")
        assert answer.choices[0].message.content == "card_lost"
        wait_until(lambda: upstreams["small"].script.received)  # the shadow is out, hanging
        second = ask(running, "large", "where is my card")
        assert second.choices[0].message.content == "card_lost"
        shadower = running.gateway.learning.shadower
        wait_until(lambda: shadower.skipped_busy == 1)  # no second call piles up behind it
        running.ledger.flush()
        assert len(running.rows(kind="request")) == 2
        assert evidence(running, source="shadow") == []  # still waiting on the small model
        assert len(upstreams["small"].script.received) == 1
    # the gateway stopped without waiting for it; what was gathered was stored
    store = LearningStore(LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}").engine)
    assert [e.source for e in store.evidence()] == ["served", "served"]


def test_a_failing_shadow_is_recorded_and_changes_nothing(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    upstreams["small"].script.default = Script("error", status=503)
    with running_gateway(config(upstreams, tmp_path)) as running:
        answer = ask(running, "large", "I lost my card")
        drain(running)
        [row] = evidence(running, source="shadow")
        [hop] = learning_hops(running)
        [request] = running.rows(kind="request")
    assert answer.choices[0].message.content == "card_lost" and request["status"] == 200
    assert row.agree is None and row.score is None and row.cost_usd == 0.0
    assert "shadow call to small failed" in row.detail and "503" in row.detail
    assert row.large_answer == "card_lost" and row.small_answer is None
    assert (hop["step"], hop["outcome"], hop["status"], hop["cost_usd"]) == (
        "shadow", "error", 502, 0.0
    )  # fmt: skip
    assert "503" in hop["error"]


def test_shadow_spend_is_not_the_keys(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost", prompt_tokens=10, completion_tokens=1)
    upstreams["small"].reply("card_lost", prompt_tokens=10, completion_tokens=1)
    with running_gateway(config(upstreams, tmp_path), auth=True) as running:
        key, secret = running.create_key("app", budget_usd=1.0)
        for prompt in ("I lost my card", "card stolen", "my card is gone"):
            ask(running, "large", prompt, api_key=secret)
        drain(running)
        shadow_cost = sum(hop["cost_usd"] for hop in learning_hops(running))
        requests = running.rows(kind="request")
        limiter_spent = running.gateway.limiter.spent(key.id)
        stored_spent = running.ledger.store.spend_by_key()[key.id]
    client_cost = sum(row["cost_usd"] for row in requests)
    assert shadow_cost == pytest.approx(3 * (10 * 1.0 + 1 * 2.0) / 1e6)
    assert limiter_spent == pytest.approx(client_cost)
    assert stored_spent == pytest.approx(client_cost)
    assert client_cost == pytest.approx(3 * (10 * 10.0 + 1 * 30.0) / 1e6)


# -- personal data stays local ----------------------------------------------------------------


def test_personal_data_never_reaches_a_remote_small_model(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path)) as running:
        ask(running, "large", "I lost my card, mail me at ana@example.com")
        drain(running)
        assert len(evidence(running, source="served")) == 1
        assert evidence(running, source="shadow") == []
        assert learning_hops(running) == []
    assert upstreams["small"].script.received == []


def test_personal_data_is_shadowed_on_a_local_small_model(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    upstreams["small"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path, local_small=True)) as running:
        ask(running, "large", "I lost my card, mail me at ana@example.com")
        drain(running)
        [row] = evidence(running, source="shadow")
    assert row.agree is True and len(upstreams["small"].script.received) == 1


def test_personal_data_is_never_audited_on_a_remote_large_model(upstreams, tmp_path) -> None:
    upstreams["small"].reply("card_lost")
    cfg = config(upstreams, tmp_path, shadow_rate=0.0, audit_rate=1.0, local_small=True)
    with running_gateway(cfg) as running:
        ask(running, "small", "my IBAN is DE44 5001 0517 5407 3249 31 and my card is lost")
        drain(running)
        assert evidence(running) == []
    assert upstreams["large"].script.received == []


def test_a_request_routed_local_only_is_private_without_personal_data() -> None:
    request = ChatRequest([Message("user", "I lost my card")])
    served = Served(LedgerEntry("r1"), request, "t", "large", "large", "x", False, 5)
    assert not served.private
    served.local_only = True  # a router kept it on local models
    assert served.private


def test_with_redact_the_evidence_is_stored_redacted(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost, we wrote to ana@example.com")
    cfg = config(upstreams, tmp_path)
    cfg.server.redact = True
    with running_gateway(cfg) as running:
        ask(running, "large", "I lost my card, mail me at ana@example.com")
        drain(running)
        [served] = evidence(running, source="served")
    assert served.input == "I lost my card, mail me at [email]"
    assert served.large_answer == "card_lost, we wrote to [email]"


# -- served below large: audited ----------------------------------------------------------------


def test_served_below_large_is_audited(upstreams, tmp_path) -> None:
    upstreams["small"].reply("card_lost", prompt_tokens=10, completion_tokens=1)
    upstreams["large"].reply("card_stolen", prompt_tokens=10, completion_tokens=1)
    with running_gateway(config(upstreams, tmp_path, shadow_rate=0.0, audit_rate=1.0)) as running:
        answer = ask(running, "small", "someone took my card")
        drain(running)
        [row] = evidence(running)
        [hop] = learning_hops(running)
    assert answer.choices[0].message.content == "card_lost"
    assert (row.source, row.small_model, row.small_answer) == ("audit", "small", "card_lost")
    assert (row.large_model, row.large_answer, row.agree) == ("large", "card_stolen", False)
    assert row.cost_usd == pytest.approx((10 * 10.0 + 1 * 30.0) / 1e6)
    assert (hop["step"], hop["model"], hop["hop"]) == ("audit", "large", HOPS["audit"])


def test_the_tasks_policy_sets_the_rates(upstreams, tmp_path) -> None:
    store = LearningStore(LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}").engine)
    store.save_policy(Policy("intents", 0, "large", ["large"], "cold start", 0.95,
                             shadow_rate=0.0, audit_rate=0.0))  # fmt: skip
    upstreams["large"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path, audit_rate=1.0)) as running:
        ask(running, "large", "I lost my card")  # config: always shadow; policy: never
        ask(running, "small", "I lost my card")  # config: always audit; policy: never
        drain(running)
        assert [e.source for e in evidence(running)] == ["served"]
    assert len(upstreams["small"].script.received) == 1  # the client's own request only
    assert len(upstreams["large"].script.received) == 1


# -- the learning budget ----------------------------------------------------------------------


def test_a_spent_budget_stops_shadowing_over_all_replicas(upstreams, tmp_path) -> None:
    store = LearningStore(LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}").engine)
    spent = Evidence("other-replica", "intents", "shadow", "label", "x", "small", "a",
                     "large", "a", True, cost_usd=0.01)  # fmt: skip
    store.add_evidence([spent])  # another replica spent today's whole budget
    upstreams["large"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path, budget_usd_per_day=0.01)) as running:
        ask(running, "large", "I lost my card")
        drain(running)
        shadower = running.gateway.learning.shadower
        assert shadower.budget_exhausted
        assert len(evidence(running, source="served")) == 1  # kept: it is free
        assert learning_hops(running) == []
    assert upstreams["small"].script.received == []


def test_shadowing_stops_once_this_replicas_calls_spend_the_budget(upstreams, tmp_path) -> None:
    # each shadow reserves its worst case (~0.00003 $) and costs 20 in + 3 out = 0.000026 $
    upstreams["large"].reply("card_lost")
    upstreams["small"].reply("card_lost", prompt_tokens=20, completion_tokens=3)
    with running_gateway(config(upstreams, tmp_path, budget_usd_per_day=0.00006)) as running:
        for prompt in ("lost card", "card gone", "no card", "card missing"):
            ask(running, "large", prompt, max_tokens=4)
            drain(running)
        shadows = evidence(running, source="shadow")
        assert running.gateway.learning.shadower.budget_exhausted
    assert 1 <= len(shadows) < 4
    assert sum(e.cost_usd for e in shadows) <= 0.00006


def test_a_zero_budget_means_no_shadow_calls(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path, budget_usd_per_day=0.0)) as running:
        ask(running, "large", "I lost my card")
        drain(running)
        assert running.gateway.learning.shadower.budget_exhausted
    assert upstreams["small"].script.received == []


# -- free text: the judge -----------------------------------------------------------------------

SUMMARISE = [{"role": "system", "content": "Summarise the meeting notes."},
             {"role": "user", "content": "Notes: ship on Monday, Ana owns QA."}]  # fmt: skip


def summarise(running: RunningGateway):
    return running.client().chat.completions.create(
        model="large", messages=SUMMARISE, extra_headers={"x-smallfirst-task": "notes"}
    )


def test_free_text_is_judged_pairwise_and_the_judge_is_paid_for(upstreams, tmp_path) -> None:
    upstreams["large"].reply("They ship on Monday; Ana owns QA.")
    upstreams["small"].reply("Ship Monday, Ana does QA.", prompt_tokens=10, completion_tokens=6)
    judge = upstreams["judge"].script
    judge.enqueue(Script(text="T", prompt_tokens=50, completion_tokens=1),
                  Script(text="B", prompt_tokens=50, completion_tokens=1))  # fmt: skip
    with running_gateway(config(upstreams, tmp_path, judge_model="judge")) as running:
        summarise(running)
        drain(running)
        [row] = evidence(running, source="shadow")
        hops = {hop["step"]: hop for hop in learning_hops(running)}
    shadow_cost = (10 * 1.0 + 6 * 2.0) / 1e6
    judge_cost = (100 * 5.0 + 2 * 15.0) / 1e6
    assert row.output_kind == "text" and (row.agree, row.score) == (True, 0.75)
    assert row.cost_usd == pytest.approx(shadow_cost + judge_cost)
    assert hops["judge"]["cost_usd"] == pytest.approx(judge_cost)
    assert hops["judge"]["hop"] == HOPS["judge"] and hops["shadow"]["hop"] == HOPS["shadow"]
    assert len(judge.received) == 2


def test_a_failed_judge_leaves_no_verdict(upstreams, tmp_path) -> None:
    upstreams["large"].reply("They ship on Monday.")
    upstreams["small"].reply("Monday.")
    upstreams["judge"].script.default = Script("error", status=500)
    with running_gateway(config(upstreams, tmp_path, judge_model="judge")) as running:
        summarise(running)
        drain(running)
        [row] = evidence(running, source="shadow")
        hops = {hop["step"]: hop for hop in learning_hops(running)}
    assert row.agree is None and "judge failed" in row.detail
    assert hops["judge"]["outcome"] == "error" and hops["shadow"]["outcome"] == "ok"


def test_without_a_judge_free_text_is_kept_but_never_shadowed(upstreams, tmp_path) -> None:
    upstreams["large"].reply("They ship on Monday.")
    with running_gateway(config(upstreams, tmp_path)) as running:
        summarise(running)
        drain(running)
        assert [e.source for e in evidence(running)] == ["served"]
    assert upstreams["small"].script.received == []


# -- cascades ---------------------------------------------------------------------------------


def test_an_escalated_cascade_is_evidence_and_is_not_shadowed_again(upstreams, tmp_path) -> None:
    upstreams["small"].reply("not a label")  # fails the `labels: [ok]` check
    upstreams["large"].reply("ok")
    with running_gateway(config(upstreams, tmp_path)) as running:
        answer = ask(running, "cascade-ladder", "I lost my card")
        drain(running)
        rows = evidence(running)
    assert answer.choices[0].message.content == "ok"
    by_source = {row.source: row for row in rows}
    assert set(by_source) == {"cascade", "served"}
    cascade = by_source["cascade"]
    assert (cascade.small_model, cascade.small_answer) == ("small", None)
    assert (cascade.large_model, cascade.large_answer, cascade.agree) == ("large", "ok", False)
    assert cascade.task == "intents" and "failed its checks" in cascade.detail
    assert len(upstreams["small"].script.received) == 1  # the cascade's own rung only


def test_a_cascade_kept_on_its_first_rung_is_no_escalation(upstreams, tmp_path) -> None:
    upstreams["small"].reply("ok")
    with running_gateway(config(upstreams, tmp_path)) as running:
        ask(running, "cascade-ladder", "I lost my card")
        drain(running)
        assert [e.source for e in evidence(running)] == []  # audit_rate 0: nothing asked
    assert upstreams["large"].script.received == []


def test_learning_hops_are_never_an_escalations_cost() -> None:
    hops = [
        {"hop": 1, "step": "answer", "cost_usd": 0.001},
        {"hop": 2, "step": "escalate", "cost_usd": 0.0},
        {"hop": 3, "step": "answer", "cost_usd": 0.01},
        {"hop": HOPS["audit"], "step": "audit", "cost_usd": 0.5},
        {"hop": HOPS["judge"], "step": "judge", "cost_usd": 0.25},
    ]
    totals = hop_totals(hops)
    assert totals.escalation_cost_usd == pytest.approx(0.01)
    assert (totals.escalated, totals.hops) == (1, 5)


def test_auto_at_cold_start_serves_large_and_shadows_small(upstreams, tmp_path) -> None:
    upstreams["large"].reply("card_lost")
    upstreams["small"].reply("card_lost")
    with running_gateway(config(upstreams, tmp_path)) as running:
        answer = ask(running, "auto", "I lost my card")
        drain(running)
        [request] = running.rows(kind="request")
        sources = sorted(e.source for e in evidence(running, task="intents"))
    assert answer.choices[0].message.content == "card_lost"
    assert (request["model"], request["task"]) == ("large", "intents")
    assert sources == ["served", "shadow"]


def test_an_embedded_model_gets_at_most_its_slots_in_flight() -> None:
    from smallfirst.config import ModelConfig
    from smallfirst.learning.shadow import MAX_IN_FLIGHT, _room
    from smallfirst.models.pricing import ModelPrice
    from smallfirst.models.registry import ModelEntry

    free = ModelPrice(0.0, 0.0, "local")
    embedded = ModelEntry(ModelConfig(name="e", backend="llamacpp", slots=3), free)
    remote = ModelEntry(ModelConfig(name="r", backend="openai", base_url="http://x/v1"), free)
    assert (_room(embedded), _room(remote)) == (3, MAX_IN_FLIGHT)
