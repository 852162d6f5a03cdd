"""Cutting documents into chunks a small model can read and MiniLM can embed.

Chunks are spans of the original text, never rewritten copies, so a chunk's text can be
checked against the source and nothing is silently dropped. Boundaries follow paragraphs,
then sentences, then words; a chunk holds at most `max_chars` characters (MiniLM reads
about 256 word pieces, roughly 1,000 characters of English) and the next chunk repeats the
last whole sentences of the previous one, up to `overlap` characters, so an answer that sits
on a boundary is still found whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smallfirst.errors import InvalidRequestError

DEFAULT_CHUNK_CHARS = 800
DEFAULT_OVERLAP = 160

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+")
_WORD_GAP = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Span:
    """`text[start:end]` of the document it was cut from."""

    start: int
    end: int
    text: str


def check_settings(max_chars: int, overlap: int) -> None:
    if max_chars < 50:
        raise InvalidRequestError(f"chunk size must be at least 50 characters, not {max_chars}")
    if overlap < 0 or overlap >= max_chars // 2:
        raise InvalidRequestError(
            f"overlap must be between 0 and half the chunk size ({max_chars // 2}), not {overlap}"
        )


def chunk_text(
    text: str, max_chars: int = DEFAULT_CHUNK_CHARS, overlap: int = DEFAULT_OVERLAP
) -> list[Span]:
    """Spans covering every non-blank character of `text`, each at most `max_chars` long."""
    check_settings(max_chars, overlap)
    units, paragraph_ends = _units(text, max_chars)
    chunks: list[Span] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and units[last + 1][1] - units[first][0] <= max_chars:
            last += 1
        last = _prefer_paragraph_end(units, paragraph_ends, first, last, max_chars)
        start, end = units[first][0], units[last][1]
        chunks.append(Span(start, end, text[start:end]))
        if last + 1 >= len(units):
            break
        first = _overlap_start(units, first, last, overlap)
    return chunks


def _overlap_start(units: list[tuple[int, int]], first: int, last: int, overlap: int) -> int:
    """First unit of the next chunk: back up over trailing units that fit in `overlap`."""
    nxt = last + 1
    while nxt - 1 > first and units[last][1] - units[nxt - 1][0] <= overlap:
        nxt -= 1
    return nxt


def _prefer_paragraph_end(
    units: list[tuple[int, int]], paragraph_ends: set[int], first: int, last: int, max_chars: int
) -> int:
    """End the chunk at a paragraph break instead, if one leaves it at least half full."""
    if last in paragraph_ends or last + 1 == len(units):
        return last
    for candidate in range(last - 1, first - 1, -1):
        if units[candidate][1] - units[first][0] < max_chars // 2:
            break
        if candidate in paragraph_ends:
            return candidate
    return last


def _units(text: str, max_chars: int) -> tuple[list[tuple[int, int]], set[int]]:
    """(start, end) of sentences no longer than `max_chars`, and which units end a paragraph."""
    units: list[tuple[int, int]] = []
    paragraph_ends: set[int] = set()
    for p_start, p_end in _pieces(_PARAGRAPH, text, 0, len(text)):
        for s_start, s_end in _pieces(_SENTENCE_END, text, p_start, p_end):
            if s_end - s_start <= max_chars:
                units.append((s_start, s_end))
            else:
                units.extend(_split_long(text, s_start, s_end, max_chars))
        paragraph_ends.add(len(units) - 1)
    return units, paragraph_ends


def _pieces(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Stripped (start, end) pieces of `text[start:end]` between matches of `pattern`."""
    pieces = []
    cursor = start
    for match in pattern.finditer(text, start, end):
        pieces.append((cursor, match.start()))
        cursor = match.end()
    pieces.append((cursor, end))
    return [span for span in (_strip(text, s, e) for s, e in pieces) if span[0] < span[1]]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """A sentence over the budget: cut at the last word gap that fits, else mid-word."""
    parts = []
    while end - start > max_chars:
        limit = start + max_chars
        gaps = [m for m in _WORD_GAP.finditer(text, start, limit + 1) if m.start() > start]
        cut, resume = (gaps[-1].start(), gaps[-1].end()) if gaps else (limit, limit)
        parts.append((start, cut))
        start = resume
    if start < end:
        parts.append((start, end))
    return parts
