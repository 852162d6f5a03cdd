"""Reading documents into plain text: text, Markdown, HTML and PDF.

HTML goes through the standard library's parser (scripts, styles and markup dropped, block
elements become paragraph breaks, so chunking still sees the structure); PDF through pypdf,
imported only when a PDF is read. Anything else is reported back as unsupported rather than
guessed at.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from smallfirst.errors import InvalidRequestError

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "hr",
        "dt",
        "dd",
        "figcaption",
        "title",
    }
)
_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template"})


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    """The file's resolved path: the key a re-add or removal finds it by."""
    text: str
    sha256: str
    """Of the file's bytes: an unchanged file is skipped without being parsed again."""


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def find_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(supported files, unsupported files) under the given files and directories.

    Hidden files and folders (`.git`, `.DS_Store`) are ignored without a word; a path that
    does not exist is an error, because a typo should not build an empty knowledge base.
    """
    supported: list[Path] = []
    unsupported: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InvalidRequestError(f"{path} does not exist", param="paths")
        for file in _walk(path):
            (supported if is_supported(file) else unsupported).append(file)
    return supported, unsupported


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path.resolve()
        return
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        if file.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield file.resolve()


def read_document(path: Path) -> Document:
    """The file's text; raises InvalidRequestError when it cannot be read or parsed."""
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if suffix in PDF_SUFFIXES:
        text = _pdf_text(path)
    elif suffix in HTML_SUFFIXES:
        text = html_to_text(raw.decode("utf-8", errors="replace"))
    elif suffix in TEXT_SUFFIXES:
        text = raw.decode("utf-8", errors="replace")
    else:
        raise InvalidRequestError(f"{path}: unsupported file type {suffix or '(none)'!r}")
    return Document(str(path), text.replace("\r\n", "\n"), digest)


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, OSError) as exc:
        raise InvalidRequestError(f"{path}: not a readable PDF ({exc})") from exc
    return "\n\n".join(page.strip() for page in pages if page.strip())


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(" ".join(data.split()) if data.strip() else " ")


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, one paragraph per block element."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    paragraphs = "".join(parser.parts).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
