"""The ambiguity check: entries about as near as the nearest must hold its answer, compared
by a signature that ignores what the audit ignores (case, spacing, end punctuation, tool call
ids) and nothing else."""

from __future__ import annotations

from smallfirst.cache.ambiguity import Neighbour, ambiguous, answer_signature


def neighbours(*pairs: tuple[float, int]) -> list[Neighbour]:
    return [Neighbour(f"k{i}", s, a) for i, (s, a) in enumerate(pairs)]


def test_a_different_answer_within_the_margin_is_ambiguous() -> None:
    assert ambiguous(neighbours((0.95, 1), (0.94, 1), (0.93, 2)), margin=0.05)


def test_agreeing_neighbours_or_a_different_one_beyond_the_margin_are_not() -> None:
    assert not ambiguous(neighbours((0.95, 1), (0.94, 1), (0.93, 1)), margin=0.05)
    assert not ambiguous(neighbours((0.95, 1), (0.94, 1), (0.89, 2)), margin=0.05)
    assert not ambiguous(neighbours((0.95, 1)), margin=0.2)
    assert not ambiguous([], margin=0.2)


def test_signatures_match_as_closed_outputs_do() -> None:
    assert answer_signature("Card arrival.") == answer_signature("  card   ARRIVAL")
    assert answer_signature("card arrival") != answer_signature("card delivery estimate")
    call = {"id": "call_1", "function": {"name": "lookup", "arguments": '{"id": 7}'}}
    other_id = {**call, "id": "call_2"}
    other_args = {"id": "call_1", "function": {"name": "lookup", "arguments": '{"id": 8}'}}
    assert answer_signature("", [call]) == answer_signature("", [other_id])
    assert answer_signature("", [call]) != answer_signature("", [other_args])
    assert answer_signature("", [call]) != answer_signature("")
