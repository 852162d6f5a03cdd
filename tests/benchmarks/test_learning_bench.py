"""The learning benchmark is code too: its stream, its stand-ins, its scoring and a tiny run of
the whole loop through a live gateway (replay small, students, no embedded model)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import shared_data

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "learning.py"
spec = importlib.util.spec_from_file_location("bench_learning", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_learning"] = bench
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def tasks():
    shared_data("tasks", "banking77")
    return bench.load_tasks(excerpt_chars=600)


def test_the_stream_mixes_three_tasks_never_repeats_and_is_the_same_for_a_seed(tasks) -> None:
    _, pools = tasks
    counts = bench.stream_counts(10_000, 250, pools)
    assert sum(counts.values()) == 10_000 and counts["qmsum"] == 250
    assert counts["snips_slots"] <= len(pools["snips_slots"])
    stream = bench.build_stream(pools, counts, seed=3)
    assert Counter(item.task for item in stream) == counts
    assert len({(item.task, item.input) for item in stream}) == len(stream)
    assert stream == bench.build_stream(pools, counts, seed=3)
    assert stream != bench.build_stream(pools, counts, seed=4)
    first = Counter(item.task for item in stream[:1000])  # interleaved, not one task after another
    assert all(first[task] > 0 for task in counts)


def test_too_many_requests_for_the_distinct_items_is_refused(tasks) -> None:
    _, pools = tasks
    with pytest.raises(SystemExit, match="distinct items"):
        bench.stream_counts(100_000, 250, pools)


def test_the_stand_in_is_right_at_its_accuracy_and_wrong_within_its_task(tasks) -> None:
    _, pools = tasks
    answers = bench.answers_at(pools, 0.9, seed=0, who="large")
    for items in pools.values():
        golds = {item.gold for item in items}
        right = sum(answers[item.input] == item.gold for item in items) / len(items)
        assert right == pytest.approx(0.9, abs=0.05)
        assert all(answers[item.input] in golds for item in items)  # a well-formed wrong answer
    assert answers == bench.answers_at(pools, 0.9, seed=0, who="large")
    assert answers != bench.answers_at(pools, 0.9, seed=0, who="small")


def test_each_task_prompt_reads_as_its_output_kind(tasks) -> None:
    from smallfirst.learning.verdicts import output_kind
    from smallfirst.types import ChatRequest, GenerationParams, Message

    specs, pools = tasks
    for name, spec in specs.items():
        item = pools[name][0]
        params = GenerationParams(json_object=spec.json_output)
        request = ChatRequest([Message("system", spec.system), Message("user", item.input)], params)
        assert output_kind(request, item.gold) == spec.kind


def test_gold_scoring_per_kind(tasks) -> None:
    specs, _ = tasks
    assert bench.correct(specs["banking77"], " Card_arrival.\n", "card_arrival")
    assert not bench.correct(specs["banking77"], "card_linking", "card_arrival")
    slots = specs["snips_slots"]
    assert bench.correct(slots, '{"city": "Paris ", "state": null}', '{"city": "paris"}')
    assert not bench.correct(slots, '{"city": "Paris"', '{"city": "Paris"}')
    assert not bench.correct(slots, '{"city": "Lyon"}', '{"city": "Paris"}')
    text = "the team agreed to buy a new microphone for the meeting room next week"
    assert bench.correct(specs["qmsum"], text, text)
    assert not bench.correct(specs["qmsum"], "nothing was said about that", text)


def test_the_judge_reads_the_learning_judge_prompt_and_is_fair_to_either_side() -> None:
    from smallfirst.learning.verdicts import judge_messages, parse_preference

    reference = "The group decided to record more meetings and to hire a transcriber."
    references = {"Question: what was decided?": reference}

    def verdict(first: str, second: str, question: str = "Question: what was decided?") -> str:
        prompt = judge_messages(question, first, second)[-1].content
        return parse_preference(bench.judge_reply(prompt, references))

    good = "They decided to record more meetings and hire a transcriber."
    poor = "The meeting was about the budget."
    assert verdict(good, poor) == "A" and verdict(poor, good) == "B"  # position does not matter
    assert verdict(good, reference) == "T"  # a good answer ties the reference
    assert verdict(reference, reference) == "T"
    assert verdict(poor, "Something else entirely happened.") in ("A", "B", "T")
    assert verdict(good, poor, question="Question: unknown?") is None  # no reference: no verdict
    assert verdict(good, poor, question="Question: what was") == "A"  # a request cut short


def test_windows_count_tiers_accuracy_and_dollars() -> None:
    def served(i: int, task: str, tier: str, right: bool, cost: float) -> object:
        return bench.Served(i, task, f"r{i}", tier, tier, "x", cost, right)

    rows = [
        served(i, "banking77", "student" if i % 2 else "large", i % 4 != 0, 0.0) for i in range(8)
    ]
    base = [served(i, "banking77", "large", True, 0.01) for i in range(8)]
    found = bench.windows(rows, base, {4: 0.002, 8: 0.005}, size=4)
    assert [(w.first, w.last) for w in found] == [(1, 4), (5, 8)]
    first = found[0].tasks["banking77"]
    assert first.n == 4 and first.shares == {"student": 0.5, "small": 0.0, "large": 0.5}
    assert first.accuracy == 0.75 and first.low < 0.75 < first.high
    assert first.large_accuracy == 1.0
    assert found[0].learning_usd == pytest.approx(0.002)
    assert found[1].learning_usd == pytest.approx(0.003)
    assert found[1].large_usd == pytest.approx(0.04) and found[1].served_usd == 0.0


def test_targets_need_requests_after_the_first_2000_and_free_text_never_below_large(tasks) -> None:
    specs, _ = tasks

    def served(i: int, task: str, tier: str, right: bool = True) -> object:
        return bench.Served(i, task, f"r{i}", tier, tier, "x", 0.0, right)

    rows = [served(i, "banking77", "student" if i >= 500 else "large") for i in range(2400)]
    rows += [served(2400 + i, "qmsum", "large") for i in range(10)]
    rows += [served(3000 + i, "snips_slots", "large") for i in range(50)]
    base = [served(r.index, r.task, "large") for r in rows]
    found = {v.task: v for v in bench.verdicts(specs, rows, base)}
    assert found["banking77"].met is True and found["banking77"].n == 400
    assert found["qmsum"].met is True and found["qmsum"].below_large == 0.0
    assert found["snips_slots"].met is None and "2000" in found["snips_slots"].note
    moved = frozenset({"qmsum"})  # a policy serving summaries below large, even unused
    assert {v.task: v for v in bench.verdicts(specs, rows, base, moved)}["qmsum"].met is False
    rows[-51] = served(2409, "qmsum", "small")  # one summary served below large
    assert {v.task: v for v in bench.verdicts(specs, rows, base)}["qmsum"].met is False


def test_the_learning_curve_is_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    cell = bench.Cell(10, {"student": 0.5, "small": 0.0, "large": 0.5}, 0.9, 0.6, 0.98,
                      0.95, 0.7, 0.99)  # fmt: skip
    found = [bench.Window(1, 10, {"banking77": cell}, 0.01, 0.001, 0.02)]
    said = bench.plot(found * 2, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "curve.png" in said


@pytest.mark.slow
def test_a_tiny_stream_runs_the_whole_loop_through_a_live_gateway(tasks, tmp_path, capsys) -> None:
    out = tmp_path / "run.json"
    summary = bench.main(
        ["--requests", "300", "--qmsum", "6", "--small", "replay", "--small-accuracy", "0.5",
         "--learn-every", "100", "--window", "100", "--excerpt-chars", "600", "--quiet",
         "--png", str(tmp_path / "curve.png"), "--json", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "always-large" in printed and "targets" in printed
    assert json.loads(out.read_text())["counts"] == summary["counts"]
    assert len(summary["windows"]) == 3 and len(summary["checkpoints"]) == 3
    for window in summary["windows"]:
        for cell in window["tasks"].values():
            assert sum(cell["shares"].values()) == pytest.approx(1.0) and cell["errors"] == 0
    qmsum = next(v for v in summary["targets"] if v["task"] == "qmsum")
    assert qmsum["below_large"] == 0.0  # half-right small summaries are never moved down
    assert summary["always_large_usd"] > 0 and summary["learning_usd"] >= 0
    first = summary["windows"][0]["tasks"]["banking77"]
    assert first["shares"]["large"] == 1.0  # cold start: everything on the large model
