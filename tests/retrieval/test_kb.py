import logging
from pathlib import Path

import pytest

from smallfirst.errors import InvalidRequestError, NotFoundError
from smallfirst.retrieval.kb import KnowledgeBase, delete_knowledge_base, list_knowledge_bases
from tests.retrieval.minipdf import make_pdf


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cooking.txt").write_text(
        "To boil an egg, place it in boiling water for nine minutes.\n\n"
        "Bread dough must rise for an hour in a warm place before baking."
    )
    (docs / "astronomy.md").write_text(
        "# Planets\n\nMars is called the red planet because of iron oxide on its surface."
    )
    (docs / "rust.html").write_text(
        "<html><body><p>The Rust borrow checker prevents data races at compile time.</p>"
        "</body></html>"
    )
    (docs / "zoo.pdf").write_bytes(make_pdf(["Zebras have black and white stripes."]))
    (docs / "notes.docx").write_bytes(b"PK\x03\x04")
    return docs


def test_add_search_finds_the_obvious_chunk_first(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="smallfirst.retrieval"):
        kb = KnowledgeBase.create("demo")
        report = kb.add([corpus])
    assert sorted(Path(p).name for p in report.added) == [
        "astronomy.md",
        "cooking.txt",
        "rust.html",
        "zoo.pdf",
    ]
    assert [Path(p).name for p in report.unsupported] == ["notes.docx"]
    assert "notes.docx" in caplog.text and "unsupported" in caplog.text
    for query, expected in [
        ("Why is Mars red?", "astronomy.md"),
        ("How long should I boil an egg?", "cooking.txt"),
        ("What prevents data races in Rust?", "rust.html"),
        ("What color are zebra stripes?", "zoo.pdf"),
    ]:
        hits = kb.search(query, k=3)
        assert Path(hits[0].source).name == expected, (query, hits)
        assert hits[0].score > hits[-1].score
    kb.close()


def test_search_returns_each_chunk_once_and_at_most_what_exists(corpus):
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
        hits = kb.search("anything at all", k=50)
        assert len(hits) == kb.info().chunks == 4
        assert len({h.id for h in hits}) == 4


def test_unchanged_files_are_skipped_and_changed_ones_replaced(corpus):
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
        again = kb.add([corpus])
        assert len(again.unchanged) == 4 and again.chunks == 0 and not again.added
        (corpus / "astronomy.md").write_text("# Planets\n\nJupiter is the largest planet.")
        update = kb.add([corpus])
        assert [Path(p).name for p in update.updated] == ["astronomy.md"]
        assert update.chunks == 1 and kb.info().chunks == 4
        top = kb.search("Which planet is the largest?", k=1)[0]
        assert "Jupiter" in top.text
        assert all("Mars" not in hit.text for hit in kb.search("the red planet", k=10))


def test_remove_takes_a_document_out_of_search(corpus):
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
        removed = kb.remove([corpus / "zoo.pdf"])
        assert [Path(p).name for p in removed] == ["zoo.pdf"]
        assert kb.info().documents == 3
        assert all(not h.source.endswith("zoo.pdf") for h in kb.search("zebra", k=10))
        assert kb.remove([corpus / "zoo.pdf"]) == []
        assert len(kb.remove([corpus])) == 3 and kb.info().chunks == 0
        assert kb.search("zebra", k=3) == []


def test_state_persists_and_a_lost_index_is_rebuilt(corpus, state_home):
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
    for index_file in (state_home / "kb" / "demo").glob("index-*.faiss"):
        index_file.unlink()
    with KnowledgeBase.open("demo") as kb:
        assert Path(kb.search("Why is Mars red?", k=1)[0].source).name == "astronomy.md"
        assert kb.index.size == 4
    assert [(i.name, i.documents, i.chunks) for i in list_knowledge_bases()] == [("demo", 4, 4)]


def test_empty_and_broken_files_are_reported_not_stored(tmp_path):
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "blank.txt").write_text("   \n\n ")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with KnowledgeBase.create("demo") as kb:
        report = kb.add([docs])
        assert [Path(p).name for p in report.empty] == ["blank.txt"]
        assert [Path(p).name for p, _ in report.failed] == ["broken.pdf"]
        assert kb.info().documents == 0


def test_unknown_and_invalid_names_are_clear_errors():
    with pytest.raises(NotFoundError, match=r"'nope' does not exist.*smallfirst kb add nope"):
        KnowledgeBase.open("nope")
    with pytest.raises(InvalidRequestError, match="invalid knowledge base name"):
        KnowledgeBase.create("../escape")
    with pytest.raises(NotFoundError):
        delete_knowledge_base("nope")


def test_bad_queries_and_paths_are_refused(corpus):
    with KnowledgeBase.create("demo") as kb:
        with pytest.raises(InvalidRequestError, match="does not exist"):
            kb.add([corpus / "missing"])
        with pytest.raises(InvalidRequestError, match="empty"):
            kb.search("  ", k=3)
        with pytest.raises(InvalidRequestError, match="k must be"):
            kb.search("mars", k=0)


def test_settings_are_fixed_at_creation():
    KnowledgeBase.create("demo", chunk_chars=300, overlap=50).close()
    with KnowledgeBase.create("demo") as kb:
        assert (kb.chunk_chars, kb.overlap) == (300, 50)
    with pytest.raises(InvalidRequestError, match="built with chunk size 300"):
        KnowledgeBase.create("demo", chunk_chars=500)
    delete_knowledge_base("demo")
    assert list_knowledge_bases() == []


def test_two_handles_see_each_others_writes(corpus):
    """Like two processes on one base: a write through one is searched through the other."""
    first, second = KnowledgeBase.create("demo"), KnowledgeBase.open("demo")
    first.add([corpus / "cooking.txt"])
    assert Path(second.search("boil an egg", k=1)[0].source).name == "cooking.txt"
    second.add([corpus / "astronomy.md"])
    first.add([corpus / "rust.html"])
    names = {Path(h.source).name for h in second.search("anything", k=10)}
    assert names == {"cooking.txt", "astronomy.md", "rust.html"}
    assert first.index.size == second.index.size == 3
    first.close()
    second.close()


def test_search_modes_and_fusion(corpus):
    from smallfirst.retrieval.kb import fuse_rankings

    assert fuse_rankings([[1, 2, 3], [3, 4]]) == [3, 1, 2, 4]
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
        for mode in ("hybrid", "dense", "keyword"):
            top = kb.search("zebra stripes", k=2, mode=mode)[0]
            assert Path(top.source).name == "zoo.pdf", mode
            assert -1.0 <= top.score <= 1.0
        assert kb.search("qwertyuiop", k=3, mode="keyword") == []
        with pytest.raises(InvalidRequestError, match="unknown search mode"):
            kb.search("zebra", k=3, mode="fuzzy")


def test_keyword_index_follows_replacements_and_removals(corpus):
    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus])
        (corpus / "astronomy.md").write_text("Jupiter has a great red spot.")
        kb.add([corpus])
        assert kb.search("iron oxide", k=5, mode="keyword") == []
        assert "Jupiter" in kb.search("great red spot", k=1, mode="keyword")[0].text
        kb.remove([corpus / "astronomy.md"])
        assert kb.search("Jupiter", k=5, mode="keyword") == []


def test_a_base_from_before_the_keyword_index_is_upgraded(corpus, state_home):
    import sqlite3

    with KnowledgeBase.create("demo") as kb:
        kb.add([corpus / "cooking.txt"])
    db = sqlite3.connect(state_home / "kb" / "demo" / "kb.sqlite")
    db.executescript(
        "DROP TRIGGER chunks_fts_insert; DROP TRIGGER chunks_fts_delete; "
        "DROP TABLE chunks_fts; PRAGMA user_version = 1;"
    )
    db.close()
    with KnowledgeBase.open("demo") as kb:
        assert "egg" in kb.search("boiling water", k=1, mode="keyword")[0].text
