from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app
from smallfirst.testing import Script

runner = CliRunner()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "mars.md").write_text("Mars is called the red planet because of iron oxide.")
    (folder / "eggs.txt").write_text("Boil an egg for nine minutes for a hard yolk.")
    (folder / "slides.pptx").write_bytes(b"PK")
    return folder


def test_add_list_search_remove_drop(docs):
    added = runner.invoke(app, ["kb", "add", "notes", str(docs)])
    assert added.exit_code == 0, added.output
    assert "2 added" in added.stdout and "2 chunks written" in added.stdout
    assert "slides.pptx" in added.stderr and "unsupported" in added.stderr

    again = runner.invoke(app, ["kb", "add", "notes", str(docs)])
    assert "2 unchanged" in again.stdout and "0 chunks written" in again.stdout

    listed = runner.invoke(app, ["kb", "list"])
    assert listed.exit_code == 0 and "notes" in listed.stdout

    found = runner.invoke(
        app, ["kb", "search", "notes", "Why is Mars red?", "-k", "1", "--mode", "dense"]
    )
    assert found.exit_code == 0, found.output
    assert "mars.md" in found.stdout and "eggs.txt" not in found.stdout

    removed = runner.invoke(app, ["kb", "remove", "notes", str(docs / "mars.md")])
    assert removed.exit_code == 0 and "removed 1 documents" in removed.stdout
    after = runner.invoke(app, ["kb", "search", "notes", "Why is Mars red?", "-k", "5"])
    assert "mars.md" not in after.stdout

    dropped = runner.invoke(app, ["kb", "drop", "notes"])
    assert dropped.exit_code == 0
    assert "no knowledge bases yet" in runner.invoke(app, ["kb", "list"]).stdout


def test_errors_exit_1_with_a_message(docs, tmp_path):
    unknown = runner.invoke(app, ["kb", "search", "ghost", "anything"])
    assert unknown.exit_code == 1 and "'ghost' does not exist" in unknown.stderr

    missing = runner.invoke(app, ["kb", "add", "notes", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no such file or folder" in missing.stderr
    assert "no knowledge bases yet" in runner.invoke(app, ["kb", "list"]).stdout

    runner.invoke(app, ["kb", "add", "notes", str(docs)])
    absent = runner.invoke(app, ["kb", "remove", "notes", "not-there.txt"])
    assert absent.exit_code == 1 and "is in knowledge base" in absent.stderr

    resized = runner.invoke(app, ["kb", "add", "notes", str(docs), "--chunk-chars", "300"])
    assert resized.exit_code == 1 and "built with chunk size 800" in resized.stderr

    fuzzy = runner.invoke(app, ["kb", "search", "notes", "mars", "--mode", "fuzzy"])
    assert fuzzy.exit_code == 1 and "unknown search mode" in fuzzy.stderr

    empty = runner.invoke(app, ["kb", "search", "notes", " "])
    assert empty.exit_code == 1 and "the query is empty" in empty.stderr


def test_ask_prints_the_answer_and_the_cited_source(docs, scripted, tmp_path):
    upstream, url = scripted
    config = tmp_path / "smallfirst.yaml"
    config.write_text(f"models:\n  - name: small\n    backend: openai\n    base_url: {url}\n")
    runner.invoke(app, ["kb", "add", "notes", str(docs)])
    upstream.enqueue(Script(text="Iron oxide [1]."), Script(text="not in the knowledge base"))
    answered = runner.invoke(app, ["kb", "ask", "notes", "Why is Mars red?", "-k", "1"])
    assert answered.exit_code == 0, answered.output
    assert "Iron oxide [1]." in answered.stdout and "[1] " in answered.stdout
    assert str(docs / "mars.md") in answered.stdout.replace("\n", "")

    unknown = runner.invoke(app, ["kb", "ask", "notes", "Who won in 1998?", "-k", "1"])
    assert unknown.exit_code == 0 and "does not contain the answer" in unknown.stderr

    absent = runner.invoke(app, ["kb", "ask", "ghost", "Why?"])
    assert absent.exit_code == 1 and "'ghost' does not exist" in absent.stderr
