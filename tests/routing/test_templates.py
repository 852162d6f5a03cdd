"""Templates learned from prompts, chunk pooling, and a router that sees past a long preamble."""

from __future__ import annotations

import numpy as np

from smallfirst.routing.features import chunks, embed_conversations, router_embedder
from smallfirst.routing.learned import predict_conversations, strong_gain, train_router
from smallfirst.routing.outcomes import Outcomes
from smallfirst.routing.templates import Template, learn_template
from tests.routing.synthetic import CHAT, MATH, NAMES

PREAMBLE = "".join(
    f"Example {i}: you are a careful assistant; read the request, think, then answer.\n"
    for i in range(25)
)  # ~2,000 characters shared by every prompt


def _questions(offset: int = 0) -> tuple[list[str], list[str]]:
    maths = [
        t.format(a=i + 2, b=i + 5, c=3 * i + 1) for i in range(offset, offset + 2) for t in MATH
    ]
    chats = [t.format(name=NAMES[i % 10] + str(i)) for i in range(offset, offset + 2) for t in CHAT]
    return maths, chats


def test_learns_shared_openings_and_endings_of_mixed_tasks() -> None:
    a = [f"Task A rules, line one of the template\nline two\nQ{i}: what is {i}?" for i in range(6)]
    b = [f"Translate the following text carefully:\n{w}\nAnswer in French." for w in "abcdefg"]
    template = learn_template(a + b + ["a one-off prompt\nwith lines\nof its own"])
    assert template.prefixes[0] == "Task A rules, line one of the template\nline two\n"
    assert "Translate the following text carefully:\n" in template.prefixes
    assert template.split(a[0]) == (
        "Task A rules, line one of the template\nline two",
        "Q0: what is 0?",
    )
    fixed, variable = template.split("unrelated question\nwith two lines")
    assert fixed == "" and variable == "unrelated question\nwith two lines"


def test_nothing_shared_learns_nothing_and_round_trips() -> None:
    assert not learn_template(["one\ntwo", "three\nfour", "five"])
    template = Template(["head\n"], ["\ntail"])
    assert Template.from_json(template.to_json()) == template
    assert template.split("head\nbody\ntail") == ("head\ntail", "body")
    assert template.split("head\n") == ("", "head\n")  # nothing would be left


def test_long_text_is_chunked_not_truncated() -> None:
    text = "word " * 1000  # 5,000 characters
    pieces = chunks(text)
    assert "".join(pieces) == text and all(len(p) <= 1000 for p in pieces)
    assert len(chunks("x " * 20_000)) == 16


def test_two_prompts_sharing_a_long_preamble_embed_and_score_differently() -> None:
    """Issue 22: behind a 2,000-character preamble every prompt embedded alike (MiniLM keeps
    its first 256 tokens), so a router gave them one constant score."""
    maths, chats = _questions()
    prompts = [[PREAMBLE + q] for q in maths + chats]
    outcomes = Outcomes(
        turns=prompts,
        models=["small", "large"],
        scores=np.array([[0.0, 1.0]] * len(maths) + [[1.0, 1.0]] * len(chats)),
    )
    router = train_router(outcomes, "knn", "minilm", k=3)
    new_maths, new_chats = _questions(offset=20)
    pair = [[PREAMBLE + new_maths[0]], [PREAMBLE + new_chats[0]]]

    embedder = router_embedder("minilm")
    template = learn_template(p[0] for p in prompts)
    assert template.prefixes == [PREAMBLE]
    aware = embed_conversations(embedder, pair, template)
    assert aware[0] @ aware[1] < 0.8
    gain = strong_gain(router, predict_conversations(router, pair))
    assert gain[0] > gain[1] + 0.5
