"""End to end: `model: "auto"` through the real gateway picks the model a learned router chose."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from pydantic import TypeAdapter

from smallfirst.config import RouterConfig
from smallfirst.routing.learned import train_router
from smallfirst.routing.outcomes import load_outcomes
from smallfirst.testing import Script
from tests.routing.synthetic import synthetic_rows, write_csv
from tests.server.gateway_helpers import running_gateway, scripted_config


def routers_config(raw: dict) -> dict[str, RouterConfig]:
    return TypeAdapter(dict[str, RouterConfig]).validate_python(raw)


@pytest.fixture
def gw(scripted, tmp_path: Path):
    upstream, base_url = scripted
    outcomes = load_outcomes(write_csv(tmp_path / "o.csv", synthetic_rows(5)))
    good = train_router(outcomes, "knn", "minilm", k=5)
    good.calibration.threshold = 0.3
    renamed = train_router(outcomes, "linear", "minilm")
    renamed.models = ["mixtral", "gpt-4"]
    config = scripted_config(base_url)
    config.routers = routers_config(
        {
            "auto": {"kind": "knn", "path": str(good.save(tmp_path / "knn.json"))},
            "linear": {"kind": "linear", "path": str(renamed.save(tmp_path / "lin.json"))},
        }
    )
    with running_gateway(config) as running:
        running.upstream = upstream
        yield running


def test_auto_sends_maths_large_and_greetings_small(gw) -> None:
    for _ in range(2):
        gw.upstream.enqueue(Script(text="ok", prompt_tokens=3, completion_tokens=1))
    maths = [{"role": "user", "content": "Solve the equation 6x + 1 = 25 for x."}]
    hello = [{"role": "user", "content": "Say hello to my friend Zed."}]
    hard = gw.client().chat.completions.with_raw_response.create(model="auto", messages=maths)
    easy = gw.client().chat.completions.with_raw_response.create(model="auto", messages=hello)
    assert (hard.headers["x-smallfirst-model"], easy.headers["x-smallfirst-model"]) == (
        "large",
        "small",
    )
    rows = {r["model"]: r for r in gw.rows()}
    assert rows["large"]["route_reason"].startswith("knn: predicted gain of large")
    assert rows["small"]["router"] == "auto"


def test_router_with_unconfigured_models_is_a_404(gw) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        gw.client().chat.completions.create(
            model="router-linear-0.2", messages=[{"role": "user", "content": "hi"}]
        )
    assert "mixtral: <model>" in str(err.value)
