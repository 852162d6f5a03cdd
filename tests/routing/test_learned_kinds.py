"""`model: auto` and `model: router-<kind>-<threshold>` resolve to learned routers from config."""

from __future__ import annotations

from pathlib import Path

import pytest

from smallfirst.config import parse_config
from smallfirst.errors import ModelNotFoundError
from smallfirst.models.registry import Registry
from smallfirst.routing.base import resolve_router
from smallfirst.routing.learned import train_router
from smallfirst.routing.outcomes import load_outcomes
from smallfirst.types import Message
from tests.routing.synthetic import synthetic_rows, write_csv

MODELS = """
models:
  - {name: local, backend: llamacpp}
  - {name: gpt-4o, backend: openai, base_url: http://127.0.0.1:9/v1, tier: large}
"""


@pytest.fixture
def router_file(tmp_path: Path) -> Path:
    outcomes = load_outcomes(write_csv(tmp_path / "o.csv", synthetic_rows(6)))
    router = train_router(outcomes, "knn", "minilm", k=5)
    router.calibration.threshold = 0.3
    return router.save(tmp_path / "router.json")


def _registry(routers: str) -> Registry:
    return Registry(parse_config(MODELS + routers))


MAP = "models: {small: local, large: gpt-4o}"


def test_auto_uses_the_configured_router_and_maps_names(router_file: Path) -> None:
    registry = _registry(f"routers:\n  auto: {{kind: knn, path: {router_file}, {MAP}}}\n")
    router = resolve_router("auto", registry)
    assert router is not None
    hard = router.decide([Message("user", "Solve the equation 4x + 9 = 21 for x.")])
    easy = router.decide([Message("user", "Say hello to my friend Max.")])
    assert (hard.model, easy.model) == ("gpt-4o", "local")
    assert hard.router == "auto" and hard.score is not None and "threshold 0.30" in hard.reason


def test_named_threshold_overrides_the_file(router_file: Path) -> None:
    registry = _registry(f"routers:\n  knn: {{kind: knn, path: {router_file}, {MAP}}}\n")
    always_large = resolve_router("router-knn--5", registry)
    never_large = resolve_router("router-knn-5", registry)
    greeting = [Message("user", "Say hello to my friend Max.")]
    assert always_large.decide(greeting).model == "gpt-4o"
    assert never_large.decide(greeting).model == "local"
    assert (
        resolve_router(
            "router-learned-0.2",
            _registry(f"routers:\n  x: {{kind: learned, path: {router_file}, {MAP}}}\n"),
        ).threshold
        == 0.2
    )


def test_large_share_is_met_on_the_calibration_prompts(router_file: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(str(r["prompt"]) for r in synthetic_rows(3, offset=20)))
    spec = f"{{kind: knn, path: {router_file}, {MAP}, large_share: 0.5, calibrate_on: {prompts}}}"
    registry = _registry(f"routers:\n  auto: {spec}\n")
    router = resolve_router("auto", registry)
    decisions = [router.decide([Message("user", line)]) for line in prompts.read_text().split("\n")]
    large = sum(d.model == "gpt-4o" for d in decisions) / len(decisions)
    assert large <= 0.5 and router.threshold != 0.3  # recalibrated, not the file's 0.3
    assert resolve_router("router-knn-0.3", registry).threshold == 0.3  # a bare float overrides


def test_unconfigured_router_model_is_a_404_naming_the_fix(router_file: Path) -> None:
    registry = _registry(f"routers:\n  auto: {{kind: knn, path: {router_file}}}\n")
    with pytest.raises(ModelNotFoundError, match="not configured models") as err:
        resolve_router("auto", registry)
    assert err.value.status == 404 and "small: <model>" in err.value.message


@pytest.mark.parametrize(
    ("routers", "name", "message"),
    [
        ("", "router-knn-0.3", "no router of kind 'knn' is configured"),
        (
            "routers:\n  knn: {kind: knn, path: {file}, " + MAP + "}\n",
            "router-knn-abc",
            "not a number",
        ),
        (
            "routers:\n  lin: {kind: linear, path: {file}, " + MAP + "}\n",
            "router-linear-0.1",
            "holds a 'knn'",
        ),
        ("", "router-nosuch-0.3", "Unknown router kind"),
    ],
)
def test_bad_router_names_are_404s(
    router_file: Path, routers: str, name: str, message: str
) -> None:
    registry = _registry(routers.replace("{file}", str(router_file)))
    with pytest.raises(ModelNotFoundError, match=message):
        resolve_router(name, registry)


def test_missing_router_file_is_reported(tmp_path: Path) -> None:
    from smallfirst.errors import ConfigError

    registry = _registry(f"routers:\n  auto: {{kind: knn, path: {tmp_path / 'gone.json'}}}\n")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_router("auto", registry)
