"""`POST /v1/feedback` on a live gateway with `learn:` over a scripted upstream: a key rates
its own requests (feedback and a `feedback` evidence row for the task), nobody else's."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from smallfirst.config import Config, LearnConfig
from smallfirst.learning.records import Evidence
from smallfirst.ledger import LedgerEntry
from smallfirst.testing.scripted import Script
from tests.server.gateway_helpers import RunningGateway, running_gateway, scripted_config

QUIET = LearnConfig(shadow_rate=0, audit_rate=0)
"""Learning on, no shadow calls: the scripted upstream answers the client only."""
SYSTEM = "You sort bank messages into intents."


def learning_config(base_url: str, **server) -> Config:
    return scripted_config(base_url, **server).model_copy(update={"learn": QUIET})


@pytest.fixture
def gw(scripted) -> Iterator[RunningGateway]:
    _upstream, base_url = scripted
    with running_gateway(learning_config(base_url)) as running:
        yield running


def ask(gw: RunningGateway, api_key: str = "unused", text: str = "card_lost") -> str:
    """One chat answer; its request id (what the client rates)."""
    response = gw.client(api_key).chat.completions.with_raw_response.create(
        model="small",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "I lost my card"},
        ],
    )
    assert response.parse().choices[0].message.content == text
    return response.headers["x-smallfirst-request-id"]


def rate(gw: RunningGateway, body: object, api_key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.post(gw.url + "/v1/feedback", json=body, headers=headers)


def evidence(gw: RunningGateway) -> list[Evidence]:
    store = gw.gateway.learning.store
    return store.evidence(sources=["feedback"])


def test_a_client_rates_its_answer_and_the_task_gets_evidence(gw, scripted) -> None:
    upstream, _ = scripted
    upstream.enqueue(Script(text="card_lost"))
    request_id = ask(gw)
    answered = rate(gw, {"request_id": request_id, "correct": True})
    assert answered.status_code == 200, answered.text
    row = gw.rows(kind="request")[0]
    assert answered.json() == {
        "object": "feedback", "request_id": request_id, "task": row["task"], "evidence": True
    }  # fmt: skip
    assert row["task"].startswith("t-")
    (rating,) = gw.gateway.learning.store.feedback()
    assert (rating.request_id, rating.correct, rating.score) == (request_id, True, None)
    (item,) = evidence(gw)
    assert (item.task, item.source, item.agree, item.score) == (row["task"], "feedback", True, 1.0)
    assert (item.small_model, item.small_answer) == ("small", "card_lost")
    assert item.input == "I lost my card" and item.large_answer is None
    assert item.cost_usd == 0.0


def test_a_score_and_the_right_answer(gw, scripted) -> None:
    upstream, _ = scripted
    upstream.enqueue(Script(text="card_lost"), Script(text="card_lost"))
    low, answered = ask(gw), ask(gw)
    assert rate(gw, {"request_id": low, "score": 0.25}).status_code == 200
    body = {"request_id": answered, "answer": "lost_or_stolen_card", "correct": False}
    assert rate(gw, body).status_code == 200
    by_id = {item.request_id: item for item in evidence(gw)}
    assert (by_id[low].agree, by_id[low].score) == (False, 0.25)
    assert (by_id[answered].agree, by_id[answered].large_answer) == (False, "lost_or_stolen_card")
    assert "gave the right answer" in (by_id[answered].detail or "")


def test_a_right_answer_alone_is_compared_for_a_closed_task(gw, scripted) -> None:
    """A task whose evidence says labels: the served label against the client's answer."""
    upstream, _ = scripted
    upstream.enqueue(Script(text="card_lost"), Script(text="card_lost"))
    first, second = ask(gw), ask(gw)
    task = gw.rows(kind="request")[0]["task"]
    store = gw.gateway.learning.store
    store.add_evidence([Evidence("earlier", task, "served", "label", "x", None, None, "large",
                                 "card_lost", None)])  # fmt: skip
    assert rate(gw, {"request_id": first, "answer": "card_lost"}).status_code == 200
    assert rate(gw, {"request_id": second, "answer": "Card_Lost."}).status_code == 200
    agreed = {item.request_id: item.agree for item in evidence(gw)}
    assert agreed == {first: True, second: True}


def test_feedback_for_a_row_still_queued_in_the_ledger_writer(gw, scripted) -> None:
    upstream, _ = scripted
    upstream.enqueue(Script(text="card_lost"))
    writer = gw.ledger.writer
    writer.linger_s = 3600.0  # the writer stores rows only when asked to flush
    writer.flush()
    request_id = ask(gw)
    assert writer.pending == 1
    assert rate(gw, {"request_id": request_id, "correct": True}).status_code == 200
    assert [item.request_id for item in evidence(gw)] == [request_id]


def test_a_responses_api_id_can_be_rated(gw, scripted) -> None:
    upstream, _ = scripted
    upstream.enqueue(Script(text="card_lost"))
    response = gw.client().responses.create(model="small", input="I lost my card")
    answered = rate(gw, {"request_id": response.id, "score": 1.0})
    assert answered.status_code == 200, answered.text
    assert response.id == "resp_" + answered.json()["request_id"]


BAD = [
    ({"request_id": "r", "score": 1.5}, "score"),
    ({"request_id": "r", "score": "high"}, "score"),
    ({"request_id": "r", "correct": "yes"}, "correct"),
    ({"request_id": "r", "answer": 3}, "answer"),
    ({"request_id": "r", "answer": ""}, "answer"),
    ({"request_id": 12, "correct": True}, "request_id"),
    ({"correct": True}, "request_id"),
    ({"request_id": "r"}, "score"),
    ({"request_id": "r", "correct": True, "rating": 5}, "rating"),
]


def test_bad_input_is_a_400_naming_the_field(gw) -> None:
    for body, field in BAD:
        answered = rate(gw, body)
        assert answered.status_code == 400, (body, answered.text)
        error = answered.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == field
        assert field in error["message"]
    for raw in (b"{not json", b"[1, 2]", b""):
        answered = httpx.post(gw.url + "/v1/feedback", content=raw)
        assert answered.status_code == 400 and answered.json()["error"]["message"]
    assert gw.gateway.learning.store.feedback() == []


def test_an_unknown_request_is_a_404(gw) -> None:
    answered = rate(gw, {"request_id": "req-nope", "correct": True})
    assert answered.status_code == 404
    assert answered.json()["error"]["param"] == "request_id"
    assert evidence(gw) == [] and gw.gateway.learning.store.feedback() == []


def test_a_key_rates_only_its_own_requests(scripted) -> None:
    upstream, base_url = scripted
    with running_gateway(learning_config(base_url), auth=True) as gw:
        _, ours = gw.create_key("team-a")
        _, theirs = gw.create_key("team-b")
        upstream.enqueue(Script(text="card_lost"))
        request_id = ask(gw, ours)
        refused = rate(gw, {"request_id": request_id, "correct": False}, theirs)
        assert refused.status_code == 404
        assert refused.json()["error"]["message"] == rate(
            gw, {"request_id": "req-unknown", "correct": False}, theirs
        ).json()["error"]["message"].replace("req-unknown", request_id)  # no hint it exists
        assert rate(gw, {"request_id": request_id, "correct": False}).status_code == 401
        assert gw.gateway.learning.store.feedback() == []
        assert rate(gw, {"request_id": request_id, "correct": False}, ours).status_code == 200
        (rating,) = gw.gateway.learning.store.feedback()
        (chat,) = [row for row in gw.rows(kind="request") if row["endpoint"] == "chat"]
        assert rating.key_id == chat["key_id"] is not None


def test_without_learn_the_route_says_learning_is_off(scripted) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        answered = rate(gw, {"request_id": "r", "correct": True})
    assert answered.status_code == 404
    assert "`learn:`" in answered.json()["error"]["message"]


def test_a_request_without_a_task_keeps_the_feedback_only(gw) -> None:
    """A row from before `learn:` was on has no task: nothing to learn it for."""
    gw.ledger.store.insert([LedgerEntry("req-old", model="small", tier="small").as_row()])
    answered = rate(gw, {"request_id": "req-old", "correct": True})
    assert answered.status_code == 200, answered.text
    assert answered.json()["task"] is None and answered.json()["evidence"] is False
    assert [f.request_id for f in gw.gateway.learning.store.feedback()] == ["req-old"]
    assert evidence(gw) == []


def test_with_auth_off_any_request_can_be_rated(gw) -> None:
    gw.ledger.store.insert([LedgerEntry("req-keyed", key_id="k1", task="t").as_row()])
    assert rate(gw, {"request_id": "req-keyed", "score": 0.9}).status_code == 200


def test_a_task_without_evidence_takes_the_kind_the_answer_looks_like(gw) -> None:
    calls = '[{"name": "lookup", "arguments": {"id": 3}}]'
    answers = {
        "label": "card_lost",
        "json": '{"city": "Paris"}',
        "tool_calls": calls,
        "text": "First, call the bank.\nThen block the card.",
    }
    for kind, answer in answers.items():
        gw.ledger.store.insert([LedgerEntry(f"req-{kind}", task=f"task-{kind}").as_row()])
        assert rate(gw, {"request_id": f"req-{kind}", "answer": answer}).status_code == 200
    found = {item.task: item.output_kind for item in evidence(gw)}
    assert found == {f"task-{kind}": kind for kind in answers}
