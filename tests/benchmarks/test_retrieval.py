"""The retrieval benchmark is code too: its loader, matching and scoring are checked here."""

import importlib.util
import sys
from pathlib import Path

from tests.conftest import shared_data

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "retrieval.py"
spec = importlib.util.spec_from_file_location("bench_retrieval", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_retrieval"] = bench
spec.loader.exec_module(bench)


def test_answer_matching_folds_case_and_whitespace():
    assert bench.contains("The  virus\nbinds ACE2.", ("virus binds ace2",))
    assert not bench.contains("The virus binds ACE2.", ("binds TMPRSS2",))


def test_tfidf_baseline_and_recall_scoring():
    search = bench.TfidfSearch(["cats purr softly", "dogs bark loudly", "fish swim"] * 4)
    question = bench.Question("which animals bark?", ("dogs bark",), "d")
    row = bench.score_retriever("tfidf", search, [question])
    assert row.hits == {1: 1, 3: 1, 5: 1, 10: 1} and row.n == 1 and len(row.latencies) == 1
    miss = bench.score_retriever("tfidf", search, [bench.Question("x", ("unicorns",), "d")])
    assert miss.recall(10) == 0.0


def test_covidqa_loads_as_articles_and_questions():
    path = shared_data("tasks", "covidqa", "200423_covidQA.json")
    docs, questions = bench.load_covidqa(path, articles=2)
    assert len(docs) == 2
    assert questions and all(q.doc in docs for q in questions)
    assert all(any(a.strip() in docs[q.doc] for a in q.answers) for q in questions)


def test_small_run_prints_both_tables(capsys):
    path = shared_data("tasks", "covidqa", "200423_covidQA.json")
    bench.main(
        [
            "--data",
            str(path),
            "--articles",
            "1",
            "--qa-sample",
            "2",
            "--modes",
            "best-sentence",
            "--latency-queries",
            "2",
        ]
    )
    out = capsys.readouterr().out
    for row in ("smallfirst kb, hybrid", "smallfirst kb, dense", "TF-IDF, sklearn (baseline)"):
        assert f"| {row} |" in out
    assert "| best-sentence |" in out and "query latency by torch threads" in out
