from pathlib import Path

import pytest
from typer.testing import CliRunner

from smallfirst.cli import app

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

    found = runner.invoke(app, ["kb", "search", "notes", "Why is Mars red?", "-k", "1"])
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

    empty = runner.invoke(app, ["kb", "search", "notes", " "])
    assert empty.exit_code == 1 and "the query is empty" in empty.stderr
