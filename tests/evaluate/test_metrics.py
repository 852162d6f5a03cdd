"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from smallfirst.evaluate.metrics import (
    answer_metrics,
    classify_metrics,
    exact_match,
    extract_metrics,
    field_counts,
    lcs_length,
    rouge_l,
    squad_normalize,
    summarize_metrics,
    token_f1,
)


def _values(metrics, n):
    return {m.name: m.value(np.arange(n)) for m in metrics}


def test_accuracy_and_macro_f1_by_hand():
    gold = ["pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "neg", "neg", "neg", "pos"]
    values = _values(classify_metrics(gold, pred), 5)
    assert values["accuracy"] == pytest.approx(3 / 5)
    # pos: tp1 fp1 fn1 -> 0.5; neg: tp2 fp1 fn0 -> 0.8; neu: tp0 -> 0
    assert values["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_labels_compare_case_and_space_insensitively_and_failures_are_wrong():
    values = _values(classify_metrics(["Positive", "negative"], ["  positive ", None]), 2)
    assert values["accuracy"] == pytest.approx(0.5)


def test_macro_f1_on_a_resample_uses_only_those_items():
    metric = classify_metrics(["a", "b"], ["a", "a"])[1]
    assert metric.value(np.array([0, 0])) == pytest.approx(1.0)
    assert metric.value(np.array([1, 1])) == pytest.approx(0.0)


def test_field_counts_by_hand():
    gold = {"city": "Paris", "date": "Monday", "people": None}
    assert field_counts(gold, {"city": "paris", "date": "Tuesday", "people": ""}) == (1, 1, 1)
    assert field_counts(gold, None) == (0, 0, 2)
    assert field_counts({"tags": ["b", "a"]}, {"tags": ["A", "B"]}) == (1, 0, 0)


def test_extract_metrics_micro_f1_exact_and_validity():
    gold = [{"a": "1", "b": "2"}, {"a": "3"}]
    pred = [{"a": "1", "b": "x"}, None]
    values = _values(extract_metrics(gold, pred, [True, False]), 2)
    # tp=1, fp=1, fn=1+1 -> 2/(2+1+2)
    assert values["field_f1"] == pytest.approx(2 / 5)
    assert values["exact_match"] == 0.0
    assert values["schema_valid"] == 0.5


def test_nothing_expected_nothing_predicted_is_perfect():
    values = _values(extract_metrics([{"a": None}], [{}], [True]), 1)
    assert values["field_f1"] == 1.0
    assert values["exact_match"] == 1.0


def test_squad_normalisation_and_exact_match():
    assert squad_normalize("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Paris.", ["paris", "London"]) == 1.0
    assert exact_match("Paris, France", ["paris"]) == 0.0


def test_token_f1_by_hand():
    # pred tokens: [paris, france], gold: [paris] -> p=1/2, r=1 -> 2/3
    assert token_f1("Paris, France", ["Paris"]) == pytest.approx(2 / 3)
    assert token_f1("Rome", ["Paris", "rome"]) == pytest.approx(1.0)
    assert token_f1("", ["Paris"]) == 0.0


def test_answer_metrics_failed_prediction_scores_zero():
    values = _values(answer_metrics([["Paris"], ["Rome"]], ["paris", None]), 2)
    assert values["exact_match"] == 0.5
    assert values["token_f1"] == 0.5


def test_lcs_by_hand():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert lcs_length([], list("abc")) == 0


def test_rouge_l_by_hand():
    # ref: "the cat sat on the mat" (6), pred: "the cat lay on the mat" (6): LCS 5
    assert rouge_l("The cat lay on the mat.", "the cat sat on the mat") == pytest.approx(5 / 6)
    # pred 3 tokens, ref 6, LCS 3: p=1, r=0.5 -> 2/3
    assert rouge_l("cat on mat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert rouge_l("", "anything") == 0.0
    assert rouge_l("dog", "cat") == 0.0


def test_summarize_takes_the_best_reference():
    values = _values(summarize_metrics([["dog barks", "cat sat"]], ["cat sat"]), 1)
    assert values["rouge_l"] == pytest.approx(1.0)


def test_macro_f1_matches_scikit_learn_and_failures_add_no_class():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(7)
    gold = rng.choice(["a", "b", "c"], size=200).tolist()
    pred = rng.choice(["a", "b", "c", "d"], size=200).tolist()
    ours = _values(classify_metrics(gold, pred), 200)["macro_f1"]
    assert ours == pytest.approx(f1_score(gold, pred, average="macro"))
    # a failure is a miss for its gold class; the classes stay a, b
    values = _values(classify_metrics(["a", "b", "b"], ["a", "b", None]), 3)
    assert values["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
