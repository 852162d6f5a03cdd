"""The router file: everything a learned router needs, in one portable file.

`.json` (readable: models, prices, threshold and its meaning; arrays base64-packed) or
`.joblib` (the same content, arrays stored natively). The threshold is a price of quality:
a model that costs more is chosen only when its predicted quality gain is at least
threshold x its extra cost, with costs scaled so the cheapest model is 0 and the priciest 1.
For two models that reads simply "go to the strong model when it is predicted to be at least
`threshold` better".
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smallfirst.errors import ConfigError

FORMAT = "smallfirst-router"
VERSION = 1


@dataclass(slots=True)
class Calibration:
    threshold: float
    method: str
    """`large-share`, `quality-target` or `default`."""
    target: float | None = None
    large_share: float | None = None
    """Share of the calibration traffic that went to the large model(s) at this threshold."""
    quality_share: float | None = None
    """Mean quality at this threshold as a share of the best single model's."""
    prompts: int = 0
    source: str = ""
    explanation: str = ""


@dataclass(slots=True)
class RouterModel:
    kind: str
    """Predictor: `knn`, `linear` or `mlp`."""
    embedder: str
    models: list[str]
    costs: list[float]
    """Price per model as given (e.g. $/Mtok), or an assumed order when none was given."""
    score_range: tuple[float, float]
    """Raw scores map to 0..1 quality through this range."""
    arrays: dict[str, np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=lambda: Calibration(0.0, "default"))
    trained_on: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def norm_costs(self) -> np.ndarray:
        costs = np.asarray(self.costs, dtype=np.float64)
        span = costs.max() - costs.min()
        return (costs - costs.min()) / span if span > 0 else np.zeros_like(costs)

    def large_models(self) -> list[str]:
        """The models calibration counts as "large": those at the top price."""
        top = max(self.costs)
        return [m for m, c in zip(self.models, self.costs, strict=True) if c == top]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        payload = self._payload(packed=path.suffix != ".joblib")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".joblib":
            import joblib

            joblib.dump(payload, path)
        else:
            path.write_text(json.dumps(payload))
        return path

    def _payload(self, packed: bool) -> dict[str, Any]:
        arrays = {k: _pack(v) if packed else v for k, v in self.arrays.items()}
        return {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "embedder": self.embedder,
            "models": self.models,
            "costs": self.costs,
            "score_range": list(self.score_range),
            "params": self.params,
            "calibration": asdict(self.calibration),
            "trained_on": self.trained_on,
            "arrays": arrays,
        }


def load_router_file(path: str | Path) -> RouterModel:
    """Read a router file; a missing or foreign file is a ConfigError naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"router file {path} does not exist (train one: smallfirst router train)")
    try:
        if path.suffix == ".joblib":
            import joblib

            payload = joblib.load(path)
        else:
            payload = json.loads(path.read_text())
    except Exception as exc:
        raise ConfigError(f"router file {path} cannot be read: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a smallfirst router file")
    arrays = {k: _unpack(v) for k, v in payload["arrays"].items()}
    return RouterModel(
        kind=payload["kind"],
        embedder=payload["embedder"],
        models=list(payload["models"]),
        costs=[float(c) for c in payload["costs"]],
        score_range=(float(payload["score_range"][0]), float(payload["score_range"][1])),
        arrays=arrays,
        params=dict(payload.get("params", {})),
        calibration=Calibration(**payload["calibration"]),
        trained_on=dict(payload.get("trained_on", {})),
    )


def _pack(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "b64": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _unpack(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    raw = base64.b64decode(value["b64"])
    return np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"]).copy()
