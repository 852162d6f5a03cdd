import hashlib

import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.retrieval.loaders import find_files, html_to_text, read_document
from tests.retrieval.minipdf import make_pdf


def test_html_keeps_visible_text_as_paragraphs():
    html = (
        "<html><head><title>Guide</title><style>p {color: red}</style></head><body>"
        "<h1>Setup</h1><p>Install the   package.</p><script>alert('x')</script>"
        "<ul><li>One &amp; two</li><li>Three</li></ul></body></html>"
    )
    assert html_to_text(html) == "Guide\n\nSetup\n\nInstall the package.\n\nOne & two\n\nThree"


def test_text_markdown_html_and_pdf_are_read(tmp_path):
    (tmp_path / "a.txt").write_text("plain\r\ntext")
    (tmp_path / "b.md").write_text("# Title\n\nbody")
    (tmp_path / "c.html").write_text("<p>web page</p>")
    (tmp_path / "d.pdf").write_bytes(make_pdf(["Zebras have (black) stripes."]))
    texts = {p.name: read_document(p).text for p in sorted(tmp_path.iterdir())}
    assert texts == {
        "a.txt": "plain\ntext",
        "b.md": "# Title\n\nbody",
        "c.html": "web page",
        "d.pdf": "Zebras have (black) stripes.",
    }
    document = read_document(tmp_path / "d.pdf")
    assert document.sha256 == hashlib.sha256((tmp_path / "d.pdf").read_bytes()).hexdigest()
    assert document.source == str(tmp_path / "d.pdf")


def test_a_broken_pdf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(InvalidRequestError, match="not a readable PDF"):
        read_document(bad)


def test_find_files_splits_supported_and_ignores_hidden(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.md").write_text("x")
    (tmp_path / "y.docx").write_bytes(b"PK")
    (tmp_path / ".hidden.txt").write_text("h")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.txt").write_text("ref")
    supported, unsupported = find_files([tmp_path])
    assert [p.name for p in supported] == ["x.md"]
    assert [p.name for p in unsupported] == ["y.docx"]


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(InvalidRequestError, match="does not exist"):
        find_files([tmp_path / "nope"])


def test_reading_an_unsupported_type_is_an_error(tmp_path):
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InvalidRequestError, match="unsupported file type"):
        read_document(path)
