"""The trained answer scorer on real MiniLM embeddings, and the scorer check in a cascade."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from smallfirst.errors import ConfigError, InvalidRequestError
from smallfirst.routing.answer_scorer import load_scorer, read_labelled_answers, train_scorer
from smallfirst.routing.cascade import Cascades
from smallfirst.testing import Script
from smallfirst.types import ChatRequest, GenerationParams, Message
from tests.routing.upstreams import registry_for, scripted_models

COUNTRIES = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Germany", "Berlin"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
    ("Norway", "Oslo"), ("Greece", "Athens"), ("Cuba", "Havana"), ("Chile", "Santiago"),
]  # fmt: skip
WRONG = ["I like turtles", "purple", "", "no idea, sorry", "42 bananas", "the weather is nice"]


def write_outcomes(path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "answer", "correct"])
        for i, (country, city) in enumerate(COUNTRIES):
            prompt = f"What is the capital of {country}?"
            writer.writerow([prompt, city, "true"])
            writer.writerow([prompt, WRONG[i % len(WRONG)], "false"])


@pytest.fixture
def scorer_file(tmp_path):
    outcomes = tmp_path / "outcomes.csv"
    write_outcomes(outcomes)
    scorer, report = train_scorer(read_labelled_answers(outcomes))
    assert report.n == 24 and report.base_rate == 0.5
    assert report.heldout_auc is not None and report.heldout_auc > 0.8
    return scorer, scorer.save(tmp_path / "scorer.npz")


def test_a_saved_scorer_loads_and_scores_the_same(scorer_file):
    scorer, path = scorer_file
    loaded = load_scorer(str(path))
    prompts, answers = ["What is the capital of Chile?"] * 2, ["Santiago", "purple"]
    assert np.allclose(scorer.score(prompts, answers), loaded.score(prompts, answers), atol=1e-5)
    good, bad = loaded.score(prompts, answers)
    assert good > bad


async def test_the_scorer_check_keeps_good_answers_and_escalates_bad_ones(scorer_file):
    _, path = scorer_file
    with scripted_models("small", "large") as (upstreams, urls):
        upstreams["small"].enqueue(Script(text="Canberra"), Script(text="I like turtles"))
        upstreams["large"].default = Script(text="Canberra")
        cascade_spec = {
            "rungs": ["small", "large"],
            "checks": [{"kind": "scorer", "path": str(path)}],
        }
        registry = registry_for(urls, {"small": "small", "large": "large"}, {"q": cascade_spec})
        cascade = Cascades(registry).get("q")
        request = ChatRequest(
            [Message("user", "What is the capital of Australia?")], GenerationParams(max_tokens=5)
        )
        kept = await cascade.run(request)
        escalated = await cascade.run(request)
    assert kept.model == "small", kept.hops
    assert escalated.model == "large" and escalated.hops[1].check == "scorer"
    assert escalated.hops[1].score < kept.hops[1].score


def test_outcome_files_with_problems_are_named(tmp_path):
    missing = tmp_path / "x.csv"
    with pytest.raises(InvalidRequestError, match="does not exist"):
        read_labelled_answers(missing)
    missing.write_text("prompt,answer\na,b\n")
    with pytest.raises(InvalidRequestError, match="missing column"):
        read_labelled_answers(missing)
    missing.write_text("prompt,answer,correct\na,b,perhaps\n")
    with pytest.raises(InvalidRequestError, match="row 2: 'perhaps' is not a yes/no"):
        read_labelled_answers(missing)
    missing.write_text("prompt,answer,correct\na,b,1\nc,d,1\n")
    with pytest.raises(InvalidRequestError, match="both correct and wrong"):
        train_scorer(read_labelled_answers(missing))


def test_a_file_that_is_not_a_scorer_is_a_config_error(tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"not numpy")
    with pytest.raises(ConfigError, match="cannot read the scorer file"):
        load_scorer(str(bogus))
