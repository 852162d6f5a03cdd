from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smallfirst.errors import InvalidRequestError
from smallfirst.retrieval.chunking import chunk_text

SENTENCES = [f"Sentence number {i} talks about topic {i % 7}." for i in range(60)]
TEXT = "\n\n".join(" ".join(SENTENCES[i : i + 5]) for i in range(0, 60, 5))


def covered(text: str, spans) -> set[int]:
    return {i for s in spans for i in range(s.start, s.end)}


def test_chunks_respect_the_size_budget_and_are_slices_of_the_text():
    spans = chunk_text(TEXT, max_chars=200, overlap=60)
    assert len(spans) > 5
    for span in spans:
        assert len(span.text) <= 200
        assert span.text == TEXT[span.start : span.end]
        assert span.text == span.text.strip()


def test_no_text_is_lost():
    spans = chunk_text(TEXT, max_chars=200, overlap=60)
    visible = {i for i, ch in enumerate(TEXT) if not ch.isspace()}
    assert visible <= covered(TEXT, spans)


def test_consecutive_chunks_overlap_by_whole_sentences_within_budget():
    spans = chunk_text(TEXT, max_chars=200, overlap=60)
    for before, after in pairwise(spans):
        shared = before.end - after.start
        assert 0 < shared <= 60
        assert after.text.startswith("Sentence number")


def test_zero_overlap_gives_disjoint_chunks():
    spans = chunk_text(TEXT, max_chars=200, overlap=0)
    for before, after in pairwise(spans):
        assert after.start >= before.end


def test_chunks_prefer_to_end_at_a_paragraph_break():
    paragraph = " ".join(["Short sentence here."] * 4)
    text = f"{paragraph}\n\n{paragraph}\n\n{paragraph}"
    spans = chunk_text(text, max_chars=len(paragraph) + 40, overlap=0)
    assert [s.text for s in spans] == [paragraph] * 3


def test_a_long_run_without_sentence_ends_is_cut_at_words_then_mid_word():
    words = " ".join(["word"] * 100)
    spans = chunk_text(words, max_chars=55, overlap=0)
    assert all(len(s.text) <= 55 for s in spans)
    assert all(not s.text.startswith(" ") and s.text.startswith("word") for s in spans)
    solid = "x" * 130
    assert [len(s.text) for s in chunk_text(solid, max_chars=50, overlap=0)] == [50, 50, 30]


def test_blank_text_gives_no_chunks():
    assert chunk_text("") == []
    assert chunk_text("  \n\n \t ") == []


@pytest.mark.parametrize(("size", "overlap"), [(10, 0), (200, -1), (200, 100), (200, 150)])
def test_bad_settings_are_refused(size, overlap):
    with pytest.raises(InvalidRequestError):
        chunk_text(TEXT, max_chars=size, overlap=overlap)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab .!?\n\t")), max_size=600),
    size=st.integers(min_value=50, max_value=200),
    overlap=st.integers(min_value=0, max_value=24),
)
def test_any_text_is_fully_covered_by_bounded_chunks(text, size, overlap):
    spans = chunk_text(text, max_chars=size, overlap=overlap)
    visible = {i for i, ch in enumerate(text) if not ch.isspace()}
    assert visible <= covered(text, spans)
    assert all(0 < len(s.text) <= size for s in spans)
    assert all(b.start > a.start for a, b in pairwise(spans))
