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


def test_background_is_stored_once_unlabelled_and_never_shadows_an_example():
    bank = ExampleBank.open("with-background", HashEmbedder())
    bank.add("book a table", "restaurant", label="restaurant")
    added = bank.add_background(["what is the time", "what is the time", "book a table", " "])
    assert added == 1 and bank.background_count() == 1
    assert bank.add_background(["what is the time", "tell me a joke"]) == 1
    vectors = bank.background_vectors()
    assert vectors.shape == (2, HashEmbedder.dim)
    np.testing.assert_allclose(vectors[0], HashEmbedder().encode(["what is the time"])[0])
    assert [e.input for e in bank.examples()] == ["book a table"]  # not examples
    bank.close()
    assert ExampleBank.open("with-background", HashEmbedder()).background_count() == 2


def test_students_from_a_bank_learn_its_background_and_defer_far_inputs():
    from smallfirst.distill.student import train_from_bank

    from .conftest import intent_pairs

    bank = ExampleBank.open("intents-bg")
    bank.add_many([(text, intent, intent) for text, intent in intent_pairs()])
    chatter = [f"tell me a joke about {x}" for x in ("cats", "dogs", "lawyers", "maths")]
    chatter += [f"translate '{x}' into German" for x in ("hello", "thank you", "good night")]
    bank.add_background(chatter)
    for kind in ("logreg", "knn"):
        student = train_from_bank(bank, target_accuracy=0.9, kind=kind)
        assert student.background and student.heldout.foreign_n == len(chatter)
        [inside, outside] = student.predict(
            ["will it rain in Madrid tomorrow", "tell me a joke about penguins"]
        )
        assert inside.answered and inside.label == "weather", kind
        assert not outside.answered and outside.reason in ("background", "unfamiliar"), kind


def test_out_of_scope_inputs_are_background_whose_cost_counts(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)  # a bank from before: background has no cost column
    old.execute(
        "CREATE TABLE background (id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
        " input TEXT NOT NULL, vec BLOB)"
    )
    old.execute("INSERT INTO background (hash, input) VALUES ('h', 'free chatter')")
    old.commit()
    old.close()
    bank = ExampleBank.open(str(path), HashEmbedder())
    bank.add("book a table", "restaurant", label="restaurant", cost_usd=0.25)
    assert bank.add_out_of_scope("what is the time", 0.5)
    assert not bank.add_out_of_scope("what is the time", 0.5)  # stored once, paid once
    assert bank.background_count() == 2 and bank.total_cost() == 0.75
    assert "what is the time" not in {e.input for e in bank.examples()}
    assert len(bank.settled_hashes()) == 3 and len(bank.known_hashes()) == 1
    bank.record_failure("is it lunch yet", "not one of the labels", 1, 0.125)  # an earlier run
    assert bank.add_out_of_scope("is it lunch yet", 0.125)
    assert bank.failures() == [] and bank.total_cost() == 1.0  # the failure's cost moved along
