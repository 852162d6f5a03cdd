"""Every pair is scored once, by a student fitted without it; the served one sees them all."""

from __future__ import annotations

import numpy as np

from smallfirst.learning.candidates import CROSS_FOLDS, cross_fitted, fold_of
from smallfirst.learning.cases import Case


def test_each_pair_is_scored_by_a_fit_that_never_saw_it() -> None:
    pairs = [Case(f"req-{i}", float(i), f"text {i}", "a") for i in range(101)]
    fits: list[set[int]] = []
    scored: list[int] = []

    def fit(rows: np.ndarray) -> int:
        fits.append({int(i) for i in rows})
        return len(fits) - 1

    def score(student: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert not fits[student] & {int(i) for i in rows}  # held out of that fit
        scored.extend(int(i) for i in rows)
        return np.ones(len(rows), dtype=bool), rows % 2 == 0

    served, answered, right = cross_fitted(pairs, fit, score)
    assert sorted(scored) == list(range(101))  # each pair once
    assert fits[served] == set(range(101))  # the served student learnt from every pair
    assert len(fits) == CROSS_FOLDS + 1
    assert answered.all() and list(right) == [i % 2 == 0 for i in range(101)]


def test_a_request_keeps_its_fold_from_pass_to_pass() -> None:
    case = Case("req-42", 1.0, "text", "a")
    assert fold_of(case) == fold_of(Case("req-42", 9.0, "other text", "b"))
    folds = {fold_of(Case(f"req-{i}", 0.0, "t", "a")) for i in range(200)}
    assert folds == set(range(CROSS_FOLDS))
