import numpy as np
import pytest

from smallfirst.distill.bank import ExampleBank, bank_path
from smallfirst.errors import InvalidRequestError, NotFoundError

from .conftest import HashEmbedder


def test_add_is_idempotent_by_content_and_survives_reopen(state_home):
    bank = ExampleBank.open("intents", HashEmbedder())
    assert bank.add("hello", "greet", label="greet", teacher="big", cost_usd=0.5)
    assert not bank.add("hello", "other", label="other")
    bank.record_failure("broken", "UpstreamError: 500", attempts=3, cost_usd=0.25)
    bank.close()
    again = ExampleBank.open("intents", HashEmbedder())
    assert bank_path("intents") == state_home / "banks" / "intents.sqlite"
    assert [(e.input, e.output, e.label) for e in again.examples()] == [("hello", "greet", "greet")]
    assert [f.reason for f in again.failures()] == ["UpstreamError: 500"]
    assert again.total_cost() == pytest.approx(0.75)
    again.add("broken", "fixed", label="fixed")
    assert again.failures() == []


def test_nearest_matches_brute_force():
    embedder = HashEmbedder()
    bank = ExampleBank.open("brute", embedder)
    texts = [f"example {i}" for i in range(40)]
    for i, text in enumerate(texts):
        bank.add(text, f"out {i}", label=str(i % 3))
    query = "a query"
    q = embedder.encode([query])[0]
    scores = embedder.encode(texts) @ q
    want = [texts[i] for i in np.argsort(-scores)[:5]]
    found = bank.nearest(query, 5)
    assert [e.input for e in found] == want
    assert [e.score for e in found] == sorted((e.score for e in found), reverse=True)
    assert found[0].score == pytest.approx(float(scores.max()), abs=1e-5)
    assert len(bank.nearest(query, 100)) == 40
    assert bank.nearest(query, 0) == []


def test_index_refreshes_after_add():
    bank = ExampleBank.open("fresh", HashEmbedder())
    assert bank.nearest("x", 3) == []
    bank.add("x", "y")
    assert [e.input for e in bank.nearest("x", 3)] == ["x"]


def test_minilm_nearest_is_semantic():
    bank = ExampleBank.open("support")
    bank.add("I want my money back for this order", "refund", label="refund")
    bank.add("My card has not arrived yet", "card_arrival", label="card_arrival")
    bank.add("How do I change my PIN?", "change_pin", label="change_pin")
    best = bank.nearest("Where is my new card? It still hasn't come.", 1)[0]
    assert best.label == "card_arrival"
    assert 0.3 < best.score <= 1.0


def test_bad_names_and_missing_banks():
    with pytest.raises(InvalidRequestError, match="bank name"):
        bank_path("../escape")
    with pytest.raises(NotFoundError, match="no example bank"):
        ExampleBank.open_existing("nothing-here")
