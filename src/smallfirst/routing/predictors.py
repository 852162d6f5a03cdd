"""Predict each model's quality (0..1) for an embedded prompt; fit from outcomes.

Three small predictors, all stored as plain arrays so a decision is a few numpy products
(no sklearn object on the hot path):
- `knn`: similarity-weighted mean of the k nearest training prompts' scores.
- `linear`: per model, logistic regression when its scores are right/wrong, ridge otherwise.
- `mlp`: one hidden layer predicting all models at once (shares what models have in common).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PREDICTOR_KINDS = ("knn", "linear", "mlp")
DEFAULT_K = 40


def fit(kind: str, x: np.ndarray, y: np.ndarray, **options: Any) -> tuple[dict, dict]:
    """Arrays and params for `predict`; `y` is (n, models) quality in 0..1."""
    if kind == "knn":
        k = int(options.get("k") or DEFAULT_K)
        return {"x": x.astype(np.float32), "y": y.astype(np.float32)}, {"k": k}
    if kind == "linear":
        return _fit_linear(x, y, float(options.get("c") or 1.0))
    if kind == "mlp":
        return _fit_mlp(x, y, int(options.get("hidden") or 128), int(options.get("seed") or 0))
    raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(PREDICTOR_KINDS)}")


def predict(kind: str, arrays: dict[str, np.ndarray], params: dict, x: np.ndarray) -> np.ndarray:
    """(n, models) predicted quality in 0..1 for unit vectors `x` (n, dim)."""
    if kind == "knn":
        return _predict_knn(arrays, int(params["k"]), x)
    if kind == "linear":
        z = x @ arrays["w"] + arrays["b"]
        logistic = arrays["logistic"].astype(bool)
        z[:, logistic] = 1.0 / (1.0 + np.exp(-z[:, logistic]))
        return np.clip(z, 0.0, 1.0)
    if kind == "mlp":
        hidden = np.maximum(x @ arrays["w1"] + arrays["b1"], 0.0)
        return np.clip(hidden @ arrays["w2"] + arrays["b2"], 0.0, 1.0)
    raise ValueError(f"unknown predictor {kind!r}; known: {', '.join(PREDICTOR_KINDS)}")


def _predict_knn(arrays: dict[str, np.ndarray], k: int, x: np.ndarray) -> np.ndarray:
    train_x, train_y = arrays["x"], arrays["y"]
    if train_x.dtype != np.float32:  # older files stored float16; convert once, not per call
        train_x = arrays["x"] = train_x.astype(np.float32)
    k = max(1, min(k, len(train_x)))
    out = np.empty((len(x), train_y.shape[1]), dtype=np.float64)
    for start in range(0, len(x), 512):
        sims = x[start : start + 512].astype(np.float32) @ train_x.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0) + 1e-3
        out[start : start + 512] = np.einsum("nk,nkm->nm", weights, train_y[top]) / weights.sum(
            axis=1, keepdims=True
        )
    return out


def _fit_linear(x: np.ndarray, y: np.ndarray, c: float) -> tuple[dict, dict]:
    from sklearn.linear_model import LogisticRegression, Ridge

    dim, models = x.shape[1], y.shape[1]
    w = np.zeros((dim, models), dtype=np.float32)
    b = np.zeros(models, dtype=np.float32)
    logistic = np.zeros(models, dtype=np.int8)
    for j in range(models):
        col = y[:, j]
        binary = np.isin(col, (0.0, 1.0)).all()
        if binary and 0 < col.sum() < len(col):
            model = LogisticRegression(C=c, max_iter=2000).fit(x, col.astype(int))
            w[:, j], b[j], logistic[j] = model.coef_[0], model.intercept_[0], 1
        else:
            model = Ridge(alpha=1.0 / c).fit(x, col)
            w[:, j], b[j] = model.coef_, model.intercept_
    return {"w": w, "b": b, "logistic": logistic}, {"c": c}


def _fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int, seed: int) -> tuple[dict, dict]:
    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        alpha=1e-2,
        early_stopping=len(x) >= 200,
        max_iter=300,
        random_state=seed,
    ).fit(x, y if y.shape[1] > 1 else y[:, 0])
    w2, b2 = model.coefs_[1], model.intercepts_[1]
    arrays = {
        "w1": model.coefs_[0].astype(np.float32),
        "b1": model.intercepts_[0].astype(np.float32),
        "w2": w2.reshape(hidden, -1).astype(np.float32),
        "b2": np.atleast_1d(b2).astype(np.float32),
    }
    return arrays, {"hidden": hidden}
