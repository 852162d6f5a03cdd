import json
from pathlib import Path

import numpy as np
import pytest

from smallfirst.distill.bank import ExampleBank
from smallfirst.distill.student import (
    TinyClassifier,
    choose_threshold,
    fit_temperature,
    labels_to_vouch,
    train_from_bank,
    train_student,
)
from smallfirst.errors import InvalidRequestError, ModelLoadError
from smallfirst.evaluate.stats import wilson_bound

from ..conftest import shared_data
from .conftest import HashEmbedder

CENTRES = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 1.0]}
FOUR = {**CENTRES, "d": [0.0, 0.0, 0.0, 1.0]}


def blobs(
    n: int, spread: float, seed: int = 0, centres: dict | None = None
) -> tuple[np.ndarray, list[str]]:
    """Clusters in 8-D that overlap a little (spread), unit-normalised like embeddings."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for label, centre in (centres or CENTRES).items():
        base = np.array([*centre, 0, 0, 0, 0, 0, 0, 0, 0][:8])
        rows.append(base + rng.normal(scale=spread, size=(n, 8)))
        labels += [label] * n
    x = np.vstack(rows)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def unit(v: list[float]) -> np.ndarray:
    arr = np.zeros((1, 8), dtype=np.float32)
    arr[0, : len(v)] = v
    return arr / np.linalg.norm(arr)


def test_confident_inside_a_cluster_defers_between_clusters():
    x, y = blobs(60, spread=0.5)
    student = train_student(x, y, target_accuracy=0.97)
    assert student.heldout.n == 180
    assert student.heldout.answered_accuracy >= 0.97
    assert 0.0 < student.heldout.coverage < 1.0  # the overlap forces some deferrals
    inside = student.predict_vectors(unit([1.0, 0.05, 0.0]))[0]
    assert inside.label == "a" and inside.answered and inside.confidence >= student.threshold
    between = student.predict_vectors(unit([1.0, 1.0, 0.0]))[0]
    assert not between.answered and between.confidence < student.threshold


def test_held_out_answers_reach_the_target_on_fresh_data():
    x, y = blobs(80, spread=0.4, seed=1)
    student = train_student(x, y, target_accuracy=0.95)
    fx, fy = blobs(200, spread=0.4, seed=2)
    predictions = student.predict_vectors(fx)
    answered = [(p.label == t) for p, t in zip(predictions, fy, strict=True) if p.answered]
    assert len(answered) > 100
    assert np.mean(answered) >= 0.93  # chosen on out-of-fold data, checked on unseen data


def test_threshold_and_temperature_helpers():
    conf = np.array([0.99, 0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, True, False, False])
    assert choose_threshold(conf, correct, 1.0, level=None) == 0.8
    assert choose_threshold(conf, correct, 0.75, level=None) == 0.7
    assert choose_threshold(np.array([0.9]), np.array([False]), 0.9) == float("inf")
    # three right answers are no evidence of 100%: on the lower bound nothing qualifies
    assert choose_threshold(conf, correct, 1.0) == float("inf")
    # over-confident log-probs are softened (T > 1), under-confident sharpened (T < 1)
    logits = np.log(np.array([[0.999, 0.001]] * 6 + [[0.001, 0.999]] * 4))
    y = np.array([0] * 8 + [1] * 2)
    assert fit_temperature(logits, y) > 1.0
    soft = np.log(np.array([[0.55, 0.45]] * 10))
    assert fit_temperature(soft, np.zeros(10, dtype=int)) < 1.0


def test_save_load_roundtrip_and_bad_files(tmp_path: Path):
    x, y = blobs(20, spread=0.3)
    student = train_student(x, y, kind="mlp", folds=3)
    path = tmp_path / "s.joblib"
    student.save(path)
    loaded = TinyClassifier.load(path)
    assert loaded.labels == ["a", "b", "c"] and loaded.kind == "mlp"
    assert loaded.threshold == student.threshold and loaded.heldout == student.heldout
    np.testing.assert_allclose(loaded.scores(x[:5]), student.scores(x[:5]))
    with pytest.raises(ModelLoadError, match="does not exist"):
        TinyClassifier.load(tmp_path / "none.joblib")
    (tmp_path / "junk.joblib").write_text(json.dumps({"x": 1}))
    with pytest.raises(ModelLoadError, match=r"could not be read|not a smallfirst student"):
        TinyClassifier.load(tmp_path / "junk.joblib")


def test_refuses_too_little_data_and_unlabelled_banks():
    with pytest.raises(InvalidRequestError, match="at least 4"):
        train_student(np.eye(3, dtype=np.float32), ["a", "a", "a"])
    with pytest.raises(InvalidRequestError, match="target accuracy"):
        train_student(np.eye(4, dtype=np.float32), ["a", "b", "a", "b"], target_accuracy=1.5)
    bank = ExampleBank.open("summaries", HashEmbedder())
    bank.add("long text", "short text")
    with pytest.raises(InvalidRequestError, match="no labels"):
        train_from_bank(bank)


def test_snips_slice_from_a_bank():
    """Gold SNIPS intents stand in for the teacher: 30 per intent train, 20 per intent test.

    (10 per intent, 70 examples, cannot vouch for 95% on the lower bound: the student defers.)"""
    folder = shared_data("tasks", "snips")
    bank = ExampleBank.open("snips-slice")
    tests: list[tuple[str, str]] = []
    for path in sorted(folder.glob("train_*.json")):
        intent = path.stem.removeprefix("train_")
        rows = json.loads(path.read_text())[intent]
        texts = ["".join(piece["text"] for piece in row["data"]) for row in rows]
        for text in texts[:30]:
            bank.add(text, intent, label=intent, teacher="gold")
        tests += [(text, intent) for text in texts[100:120]]
    student = train_from_bank(bank, target_accuracy=0.95)
    predictions = student.predict([t for t, _ in tests])
    accuracy = np.mean([p.label == g for p, (_, g) in zip(predictions, tests, strict=True)])
    assert accuracy >= 0.8
    answered = [p.label == g for p, (_, g) in zip(predictions, tests, strict=True) if p.answered]
    assert answered and np.mean(answered) >= accuracy


def test_threshold_is_chosen_on_the_lower_bound_not_the_point_estimate():
    # 200 answers by confidence: the top 100 all right, then one wrong in every ten.
    conf = np.linspace(1.0, 0.0, 200, endpoint=False)
    correct = np.ones(200, dtype=bool)
    correct[100::10] = False
    point = choose_threshold(conf, correct, 0.95, level=None)
    strict = choose_threshold(conf, correct, 0.95)
    assert strict > point  # the point estimate reaches 0.95 further down than its bound does
    kept = conf >= strict
    right, n = int(correct[kept].sum()), int(kept.sum())
    assert wilson_bound(right, n) >= 0.95
    point_kept = conf >= point
    assert correct[point_kept].mean() >= 0.95
    assert wilson_bound(int(correct[point_kept].sum()), int(point_kept.sum())) < 0.95


def test_thirty_perfect_held_out_answers_do_not_claim_97_percent():
    x, y = blobs(10, spread=0.05)
    student = train_student(x, y, target_accuracy=0.97)
    assert student.heldout.accuracy == 1.0
    assert student.threshold == float("inf") and student.heldout.coverage == 0.0
    assert not any(p.answered for p in student.predict_vectors(x))
    loose = train_student(x, y, target_accuracy=0.85)  # 30/30 has a lower bound of ~0.92
    assert loose.heldout.lower_bound >= 0.85
    assert loose.heldout.coverage == 1.0
    # 3 labels, no background, no stand-ins: less familiar than any held-out example defers
    far = loose.predict_vectors(unit([0.0, 0.0, 0.0, 0.0, 1.0]))[0]
    assert not far.answered and far.similarity < loose.similarity_threshold


def test_an_input_unlike_the_training_data_defers_even_when_the_classifier_is_sure():
    x, y = blobs(60, spread=0.3, centres=FOUR)
    student = train_student(x, y, target_accuracy=0.95)
    assert student.heldout.foreign_n == len(y)  # every example also scored with its label unseen
    assert student.heldout.foreign_answered <= 0.05
    familiar = student.predict_vectors(unit([1.0, 0.05, 0.0]))[0]
    assert familiar.answered and familiar.label == "a"
    # far along an axis no training example uses, leaning to "a" > "b": a linear model is sure
    far = unit([1.0, -1.0, -1.0, -1.0, 4.0])
    [prediction] = student.predict_vectors(far)
    assert prediction.label == "a" and prediction.confidence >= student.threshold
    assert not prediction.answered and prediction.reason == "unfamiliar"
    assert prediction.similarity < student.similarity_threshold


def test_background_is_learnt_as_a_class_that_always_defers():
    x, y = blobs(40, spread=0.15)
    background, _ = blobs(40, spread=0.15, seed=3, centres={"bg": [0, 0, 0, 0, 1.0]})
    student = train_student(x, y, target_accuracy=0.9, background=background)
    assert student.background and student.labels == ["a", "b", "c"]
    assert student.heldout.foreign_n == len(background)  # 3 labels: too few to hold any out
    fresh, _ = blobs(20, spread=0.15, seed=4, centres={"bg": [0, 0, 0, 0, 1.0]})
    predictions = student.predict_vectors(fresh)
    assert not any(p.answered for p in predictions)
    assert {p.reason for p in predictions} <= {"background", "unfamiliar"}
    assert student.predict_vectors(unit([1.0, 0.05, 0.0]))[0].answered
    with pytest.raises(InvalidRequestError, match="reserved"):
        train_student(x, ["__background__", *y[1:]])


def test_the_summary_line_carries_interval_bound_and_counts():
    x, y = blobs(60, spread=0.5)
    held = train_student(x, y, target_accuracy=0.9).heldout
    line = held.summary()
    assert f"(N={held.n})" in line and f"N={held.answered_n})" in line
    assert "95% CI" in line and f"lower bound {held.lower_bound:.3f}" in line
    assert held.lower_bound <= held.answered_accuracy


def test_few_labels_cannot_vouch_for_unseen_intents_and_the_student_says_so():
    # 1 unseen intent in L + 1 is more familiar than all L held-out ones (exchangeable intents)
    assert (labels_to_vouch(0.97), labels_to_vouch(0.95), labels_to_vouch(0.9)) == (33, 19, 9)
    x, y = blobs(60, spread=0.3, centres=FOUR)
    student = train_student(x, y, target_accuracy=0.95)
    assert student.heldout.foreign_labels == 4
    assert "stand-ins from 4 held-out labels" in student.heldout.summary()
    caveat = student.out_of_scope_caveat()
    assert caveat and "4 labels are too few" in caveat and "(19+ needed)" in caveat
    assert train_student(x, y, target_accuracy=0.75).out_of_scope_caveat() is None  # 3 needed
    background, _ = blobs(30, spread=0.2, seed=5, centres={"bg": [0, 0, 0, 0, 1.0]})
    with_bg = train_student(x, y, target_accuracy=0.95, background=background)
    assert with_bg.out_of_scope_caveat() is None


def test_knn_student_votes_and_defers_far_inputs():
    x, y = blobs(60, spread=0.15, centres=FOUR)
    student = train_student(x, y, kind="knn", target_accuracy=0.9)
    assert student.predict_vectors(unit([0.0, 1.0, 0.05]))[0].answered
    far = student.predict_vectors(unit([1.0, -1.0, -1.0, -1.0, 4.0]))[0]
    assert not far.answered


def test_a_student_file_from_before_familiarity_still_loads(tmp_path: Path):
    import joblib

    x, y = blobs(40, spread=0.3)
    student = train_student(x, y, target_accuracy=0.9)
    path = tmp_path / "old.joblib"
    student.save(path)
    state = joblib.load(path)
    for key in ("similarity_threshold", "reference", "background"):
        del state[key]
    state["heldout"] = {k: state["heldout"][k] for k in ("n", "accuracy", "coverage")} | {
        "answered_accuracy": 1.0
    }
    joblib.dump(state, path)
    old = TinyClassifier.load(path)
    assert old.reference is None and old.similarity_threshold == float("-inf")
    [far] = old.predict_vectors(unit([0.0, 0.0, 0.0, 0.0, 1.0]))
    assert far.similarity == 1.0 and far.reason in ("", "unsure")  # familiar: nothing to compare
