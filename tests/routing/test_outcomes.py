"""Outcome files in every accepted format, and the errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smallfirst.routing.outcomes import (
    OutcomesError,
    first_turn_per_question,
    load_outcomes,
    load_prices,
)
from tests.conftest import shared_data


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_bool_columns_and_ignored_text_columns(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "o.csv",
        'prompt,small,large,small_response\n"2+2?",True,True,"4"\n"prove it",False,True,"no"\n',
    )
    out = load_outcomes(file)
    assert out.models == ["small", "large"]
    assert out.turns == [["2+2?"], ["prove it"]]
    np.testing.assert_array_equal(out.scores, [[1, 1], [0, 1]])


def test_jsonl_nested_scores_flat_scores_and_messages(tmp_path: Path) -> None:
    nested = _write(
        tmp_path / "a.jsonl", json.dumps({"prompt": "hi", "scores": {"a": 1, "b": 0.5}})
    )
    assert load_outcomes(nested).models == ["a", "b"]
    flat = _write(tmp_path / "b.jsonl", json.dumps({"question": "hi", "a": 3, "b": 9}) + "\n")
    assert load_outcomes(flat).scores.tolist() == [[3.0, 9.0]]
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    multi = _write(tmp_path / "c.jsonl", json.dumps({"messages": messages, "a": 1, "b": 0}))
    assert load_outcomes(multi).turns == [["first", "second"]]


def test_json_list_with_prices_beside_it(tmp_path: Path) -> None:
    rows = [{"question": "q1", "scores": {"m1": 0.0, "m2": 1.0}}]
    _write(tmp_path / "train.json", json.dumps(rows))
    prices = {
        "m1": {"input_price": 0.1, "output_price": 0.3},
        "m2": {"input_price": 1, "output_price": 1},
    }
    _write(tmp_path / "default_llm.json", json.dumps(prices))
    out = load_outcomes(tmp_path / "train.json")
    assert out.costs == {"m1": pytest.approx(0.2), "m2": 1.0}
    assert load_prices(tmp_path / "default_llm.json", ["m1", "zzz"]) == {}


def test_csv_directory_keeps_subject_groups(tmp_path: Path) -> None:
    folder = tmp_path / "mmlu"
    folder.mkdir()
    _write(folder / "mmlu_a.csv", "prompt,w,s\nq1,False,True\n")
    _write(folder / "mmlu_b.csv", "prompt,w,s\nq2,True,True\nq3,False,False\n")
    out = load_outcomes(folder)
    assert len(out) == 3 and out.groups == ["mmlu_a", "mmlu_b", "mmlu_b"]


def test_mt_bench_judgements_join_questions_and_carry_context(tmp_path: Path) -> None:
    _write(
        tmp_path / "mt_bench__question.jsonl",
        json.dumps({"question_id": 7, "turns": ["Write a poem.", "Now shorter."]}) + "\n",
    )
    rows = [
        {"question_id": 7, "model": m, "turn": t, "score": s}
        for m, t, s in [("big", 1, 9), ("big", 2, 8), ("small", 1, 6), ("small", 2, 3)]
    ]
    file = _write(tmp_path / "judgements.jsonl", "\n".join(json.dumps(r) for r in rows))
    out = load_outcomes(file)
    assert out.models == ["big", "small"]
    assert out.turns == [["Write a poem."], ["Write a poem.", "Now shorter."]]
    assert out.scores.tolist() == [[9, 6], [8, 3]]
    assert out.groups == ["7", "7"]


def test_mt_bench_without_question_file_says_so(tmp_path: Path) -> None:
    row = {"question_id": 1, "model": "a", "turn": 1, "score": 5}
    file = _write(tmp_path / "j.jsonl", json.dumps(row))
    with pytest.raises(OutcomesError, match="question file"):
        load_outcomes(file)


def test_exclude_drops_listed_prompts(tmp_path: Path) -> None:
    file = _write(tmp_path / "o.csv", "prompt,a,b\nkeep me,1,0\ndrop me ,0,1\n")
    bad = _write(tmp_path / "bad.jsonl", json.dumps({"eval_prompt": "drop me"}))
    assert load_outcomes(file, exclude=bad).turns == [["keep me"]]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.jsonl", "", "empty"),
        ("empty.csv", "prompt,a,b\n", "no rows"),
        ("noprompt.csv", "text2,a\nx,1\n", "no prompt column"),
        ("noscores.csv", "prompt,answer\nhi,there\n", "no score columns"),
        ("badscore.csv", "prompt,a,b\nx,1,0\ny,oops,1\n", "row 2: score for 'a'"),
        ("broken.jsonl", "{not json", "not valid JSON"),
    ],
)
def test_bad_files_give_clear_messages(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(OutcomesError, match=message):
        load_outcomes(_write(tmp_path / name, text))


def test_unknown_model_columns_and_missing_file(tmp_path: Path) -> None:
    file = _write(tmp_path / "o.csv", "prompt,a,b\nx,1,0\n")
    with pytest.raises(OutcomesError, match=r"unknown model column\(s\) \['c'\]"):
        load_outcomes(file, models=["a", "c"])
    with pytest.raises(OutcomesError, match="does not exist"):
        load_outcomes(tmp_path / "nope.csv")
    assert OutcomesError("x").status == 400


def test_shared_routellm_and_llmrouter_files_load_as_they_are() -> None:
    root = shared_data("routing")
    gsm = load_outcomes(
        root / "routellm/gsm8k__gsm8k_responses.csv",
        exclude=root / "routellm/gsm8k__contaminated_prompts.jsonl",
    )
    assert gsm.models == ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    assert len(gsm) < 1319 and set(np.unique(gsm.scores)) == {0.0, 1.0}
    mt = load_outcomes(root / "routellm/mt_bench__judgements.jsonl")
    assert len(mt) == 160 and mt.scores.max() <= 10
    llm = load_outcomes(root / "llmrouter/train.json")
    assert len(llm.models) == 9 and len(llm.costs) == 9


def test_blank_in_an_unselected_column_is_ignored(tmp_path: Path) -> None:
    """Issue 22: `--models a,b` failed on a blank score in a column that was not selected."""
    file = _write(tmp_path / "o.csv", "prompt,a,b,gap\nx,1,0,\ny,0,1,0.5\n")
    out = load_outcomes(file, models=["a", "b"])
    assert out.models == ["a", "b"] and len(out) == 2 and out.skipped == 0


def test_rows_missing_a_selected_score_are_skipped_and_counted(tmp_path: Path) -> None:
    file = _write(tmp_path / "o.csv", "prompt,a,b\nx,1,0\ny,,1\nz,1, \nw,0,1\n")
    out = load_outcomes(file)
    assert out.turns == [["x"], ["w"]] and out.skipped == 2
    lines = [{"prompt": "p", "scores": {"a": 1, "b": 0}}, {"prompt": "q", "scores": {"a": 1}}]
    jsonl = _write(tmp_path / "o.jsonl", "\n".join(json.dumps(r) for r in lines))
    assert load_outcomes(jsonl, models=["a", "b"]).skipped == 1


def test_a_first_row_blank_does_not_hide_a_score_column(tmp_path: Path) -> None:
    file = _write(tmp_path / "o.csv", "prompt,a,b\nx,,0\ny,1,1\n")
    out = load_outcomes(file)
    assert out.models == ["a", "b"] and out.skipped == 1


def _mt_bench_files(tmp_path: Path) -> Path:
    questions = [
        {"question_id": 1, "turns": ["q1 first", "q1 second"]},
        {"question_id": 2, "turns": ["q2 first", "q2 second"]},
    ]
    _write(tmp_path / "question.jsonl", "\n".join(json.dumps(q) for q in questions))
    rows = [
        {"question_id": q, "model": m, "turn": t, "score": s}
        for q, m, t, s in [
            (1, "weak", 1, 2), (1, "weak", 2, 4), (1, "strong", 1, 8), (1, "strong", 2, 10),
            (2, "weak", 1, 6), (2, "weak", 2, 6), (2, "strong", 1, 6), (2, "strong", 2, 8),
        ]
    ]  # fmt: skip
    return _write(tmp_path / "judgements.jsonl", "\n".join(json.dumps(r) for r in rows))


def test_mt_bench_routed_per_question_on_turn_one(tmp_path: Path) -> None:
    out = first_turn_per_question(load_outcomes(_mt_bench_files(tmp_path)))
    assert out.turns == [["q1 first"], ["q2 first"]]
    assert out.models == ["strong", "weak"]
    np.testing.assert_array_equal(out.scores, [[9, 3], [7, 6]])


def test_a_contaminated_second_turn_drops_the_whole_question(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.jsonl", json.dumps({"eval_prompt": "q1 second"}))
    out = load_outcomes(_mt_bench_files(tmp_path), exclude=bad)
    assert out.groups == ["2", "2"]
