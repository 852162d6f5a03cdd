"""The learner over a real SQLite ledger: promote on proof, wait for evidence, demote on audits."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from smallfirst.distill.student import TinyClassifier
from smallfirst.errors import InvalidRequestError
from smallfirst.evaluate.stats import wilson_bound
from smallfirst.learning.candidates import more_needed, rate_estimate
from smallfirst.learning.cases import build_cases
from smallfirst.learning.learner import SHADOW_FLOOR, keep_learning, learn, rollback
from smallfirst.learning.records import Evidence, Feedback, Policy
from smallfirst.ledger.entry import LedgerEntry
from smallfirst.ledger.store import LedgerStore

from .learn_helpers import compared, intent_pairs, learn_config, open_store, registry, served

NOW = 10_000.0


@pytest.fixture
def store(tmp_path: Path):
    return open_store(tmp_path)


def test_a_label_task_with_enough_large_answers_moves_to_a_student(store, tmp_path):
    store.add_evidence(served("intents", intent_pairs()))
    [outcome] = learn(registry(), store, learn_config(), now=NOW)
    assert outcome.action == "promoted"
    policy = store.current_policies()["intents"]
    assert (policy.version, policy.serve, policy.rungs) == (1, "student", ["large"])
    assert policy.estimate is not None and policy.estimate.lower >= 0.8
    assert policy.estimate.n == 120  # every pair, each scored by a student that never saw it
    assert policy.audit_rate > 0 and policy.share_below_large > 0.5
    for words in ("agreement", f"N={policy.estimate.n}", "target 0.8", "held-out"):
        assert words in policy.reason
    student = Path(policy.artifacts["student"])
    assert student.parent == tmp_path / "learned"  # beside the ledger file
    assert TinyClassifier.load(student).labels == ["music", "restaurant", "weather"]


def test_too_little_evidence_says_how_much_more_and_changes_nothing(store):
    store.add_evidence(served("intents", intent_pairs()[:25]))
    [outcome] = learn(registry(), store, learn_config(min_evidence=40), now=NOW)
    assert outcome.action == "needs_evidence" and outcome.needed == 15
    assert "25 of the 40 comparisons needed (15 more)" in outcome.message
    assert "cold start" in outcome.message
    assert store.current_policies() == {}


def test_a_bound_short_of_the_target_is_not_promoted(store):
    """94% agreement on 100 comparisons: a lower bound of ~0.89, short of 0.95."""
    store.add_evidence(compared("extract", [True] * 94 + [False] * 6))
    config = learn_config(target=0.95, min_evidence=50)
    [outcome] = learn(registry(), store, config, now=NOW)
    assert outcome.action == "kept" and store.current_policies() == {}
    assert "best candidate small 0.940" in outcome.message
    assert "its agreement is not above the target" in outcome.message


def test_the_small_model_is_promoted_on_shadow_comparisons(store):
    store.add_evidence(compared("extract", [True] * 200))
    [outcome] = learn(registry(), store, learn_config(target=0.95), now=NOW)
    assert outcome.action == "promoted"
    policy = store.current_policies()["extract"]
    assert (policy.serve, policy.rungs, policy.share_below_large) == ("small", ["small"], 1.0)
    # a second run with nothing new keeps it (no new version)
    [again] = learn(registry(), store, learn_config(target=0.95), now=NOW + 1)
    assert again.action == "kept" and len(store.history("extract")) == 1


def test_a_small_model_proven_worse_is_shadowed_at_a_trickle(store):
    """Small agrees on 50 of 200: its upper bound is far below 0.95, so asking it at the
    full shadow rate is spend without hope; a version on large shadows at the floor."""
    store.add_evidence(compared("extract", [True] * 50 + [False] * 150))
    config = learn_config(target=0.95, shadow_rate=0.5)
    [outcome] = learn(registry(), store, config, now=NOW)
    policy = store.current_policies()["extract"]
    assert (policy.serve, policy.rungs, policy.shadow_rate) == ("large", ["large"], SHADOW_FLOOR)
    assert "below target" in policy.reason and f"{SHADOW_FLOOR:.0%}" in outcome.message
    [again] = learn(registry(), store, config, now=NOW + 1)
    assert again.action == "kept" and len(store.history("extract")) == 1


def test_free_text_without_judge_verdicts_never_moves_down(store):
    rows = [
        Evidence(f"q{i}", "summaries", "shadow", "text", f"doc {i}", "small", "short",
                 "large", "a longer summary", None, ts=1000 + i)
        for i in range(300)
    ]  # fmt: skip
    store.add_evidence(rows)
    [outcome] = learn(registry(), store, learn_config(), now=NOW)
    assert outcome.action == "kept" and store.current_policies() == {}
    assert "judge" in outcome.message


def test_audits_showing_a_drop_demote_to_large(store):
    store.add_evidence(compared("extract", [True] * 200))
    learn(registry(), store, learn_config(target=0.95), now=NOW)
    audits = compared(
        "extract", [True] * 10 + [False] * 20, source="audit", start=NOW + 10, prefix="a"
    )
    store.add_evidence(audits)
    [outcome] = learn(registry(), store, learn_config(target=0.95), now=NOW + 100)
    assert outcome.action == "demoted"
    policy = store.current_policies()["extract"]
    assert (policy.version, policy.serve, policy.rungs) == (2, "large", ["large"])
    assert "demoted from v1" in policy.reason and "N=30" in policy.reason
    assert policy.evidence_since == NOW + 100
    # the evidence before the demotion no longer counts: it does not bounce straight back
    [after] = learn(registry(), store, learn_config(target=0.95), now=NOW + 200)
    assert after.action == "needs_evidence"


def test_a_few_disagreeing_audits_are_not_a_drop(store):
    """One miss in 12 audits: the lower bound is under 0.95 but nothing is proven yet."""
    store.add_evidence(compared("extract", [True] * 200))
    learn(registry(), store, learn_config(target=0.95), now=NOW)
    store.add_evidence(
        compared("extract", [True] * 11 + [False], source="audit", start=NOW + 10, prefix="a")
    )
    [outcome] = learn(registry(), store, learn_config(target=0.95), now=NOW + 100)
    assert outcome.action == "kept" and store.current_policies()["extract"].version == 1


def test_history_and_rollback_make_a_new_version(store):
    store.add_evidence(compared("extract", [True] * 200))
    learn(registry(), store, learn_config(target=0.95), now=NOW)
    store.add_evidence(compared("extract", [False] * 30, source="audit", start=NOW + 1, prefix="a"))
    learn(registry(), store, learn_config(target=0.95), now=NOW + 100)
    restored = rollback(store, "extract", 1, now=NOW + 200)
    assert (restored.version, restored.serve, restored.rolled_back_from) == (3, "small", 1)
    assert [p.serve for p in store.history("extract")] == ["small", "large", "small"]
    assert store.current_policies()["extract"].reason.startswith("rolled back to v1")
    with pytest.raises(InvalidRequestError, match="no policy version 9"):
        rollback(store, "extract", 9)


def test_feedback_outranks_the_large_answer():
    rows = [
        Evidence("r1", "t", "served", "label", "hi", None, None, "large", "music", None, ts=1),
        Evidence("r2", "t", "audit", "label", "yo", "tiny", "music", "large", "music", True, ts=2),
        Evidence("r3", "t", "served", "label", "ho", None, None, "large", "music", None, ts=3),
    ]
    ratings = [
        Feedback("r1", None, answer="weather"),
        Feedback("r2", None, correct=False),
        Feedback("r3", None, correct=False),
    ]
    one, two, three = build_cases(rows, ratings, "label")
    assert one.reference == "weather" and one.trusted
    assert two.agree is False  # the client was served the cheaper answer and said it was wrong
    assert not three.trusted  # the large answer it got was wrong: it teaches nothing


def test_more_needed_is_where_the_bound_reaches_the_target():
    estimate = rate_estimate(98, 100, 0.95)
    needed = more_needed(estimate, 0.95, 0.95)
    assert needed is not None and needed > 0
    total = 100 + needed
    assert (
        wilson_bound(0.98 * total, total, 0.95)
        >= 0.95
        > wilson_bound(0.98 * (total - 1), total - 1, 0.95)
    )
    assert more_needed(rate_estimate(90, 100, 0.95), 0.95, 0.95) is None


def test_a_policy_round_trips_through_the_store(store):
    saved = store.save_policy(Policy("t", 0, "large", ["large"], "why", 0.95))
    assert store.current_policies()["t"] == saved


async def test_keep_learning_runs_passes_in_the_background_and_survives_a_failure(store, caplog):
    config = learn_config(target=0.95, interval_s=0.01)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE learn_policies RENAME TO learn_policies_away"))
    store.add_evidence(compared("extract", [True] * 200))
    task = asyncio.create_task(keep_learning(registry(), store, config))
    try:
        with caplog.at_level(logging.ERROR, "smallfirst.learning"):
            for _ in range(500):
                if "the learner failed" in caplog.text:
                    break
                await asyncio.sleep(0.01)
        assert "the learner failed" in caplog.text and not task.done()
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE learn_policies_away RENAME TO learn_policies"))
        for _ in range(500):
            if store.current_policies():
                break
            await asyncio.sleep(0.01)
        assert store.current_policies()["extract"].serve == "small"
    finally:
        task.cancel()


def test_a_student_that_answers_nothing_is_no_promotion(store):
    """Labels that do not follow the inputs: the student defers every held-out request, and
    a policy serving nothing below large is not a move."""
    pairs = intent_pairs()
    shuffled = [label for _, label in intent_pairs(seed=1)]
    store.add_evidence(
        served("noise", [(text, label) for (text, _), label in zip(pairs, shuffled, strict=True)])
    )
    [outcome] = learn(registry(), store, learn_config(), now=NOW)
    assert outcome.action == "kept" and store.current_policies() == {}
    assert "cold start" in outcome.message


def test_a_students_audits_count_with_the_share_it_really_served(store, tmp_path):
    """Half the traffic since v1 was answered by the student (the ledger says so) and half
    of its audited answers were wrong: the client got 75% agreement, and v1 is demoted."""
    store.save_policy(
        Policy("intents", 0, "student", ["large"], "proven", 0.95, created_at=NOW,
               share_below_large=0.9, artifacts={"student": str(tmp_path / "s.joblib")})
    )  # fmt: skip
    ledger = LedgerStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    rows = [
        LedgerEntry(request_id=f"r{i}", endpoint="chat", task="intents", ts=NOW + i,
                    tier="tiny" if i % 2 else "large", status=200).as_row()
        for i in range(100)
    ]  # fmt: skip
    ledger.insert(rows)
    ledger.close()
    store.add_evidence(
        compared("intents", [True, False] * 15, source="audit", kind="label", start=NOW + 1)
    )
    [outcome] = learn(registry(), store, learn_config(target=0.95), now=NOW + 500)
    assert outcome.action == "demoted" and outcome.estimate is not None
    assert outcome.estimate.agreement == pytest.approx(0.75)
    assert outcome.estimate.n == 30


def test_a_tasks_own_target_holds_it_back_while_others_move(store):
    """96% agreement on 200 comparisons proves 0.9 but not 0.97: the task with the stricter
    target of its own stays on large, the other moves to the small model."""
    for task in ("lenient", "strict"):
        store.add_evidence(compared(task, [True] * 192 + [False] * 8))
    config = learn_config(target=0.9, tasks={"strict": {"target": 0.97}})
    outcomes = {o.task: o for o in learn(registry(), store, config, now=NOW)}
    assert outcomes["lenient"].action == "promoted" and outcomes["lenient"].target == 0.9
    assert outcomes["strict"].action == "kept" and outcomes["strict"].target == 0.97
    assert set(store.current_policies()) == {"lenient"}


def test_a_tasks_own_evidence_count_and_rates_apply_to_it_alone():
    config = learn_config(tasks={"refunds": {"min_evidence": 500, "audit_rate": 0.5}})
    own, other = config.for_task("refunds"), config.for_task("intents")
    assert (own.min_evidence, own.audit_rate, own.target) == (500, 0.5, 0.8)
    assert other is config and (other.min_evidence, other.audit_rate) == (40, 0.05)


def test_a_bad_task_setting_fails_at_load_naming_it():
    with pytest.raises(ValueError, match=r"tasks\.strict\.target"):
        learn_config(tasks={"strict": {"target": 1.5}})
    with pytest.raises(ValueError, match=r"tasks\.strict\.shadow"):
        learn_config(tasks={"strict": {"shadow": 0.1}})
