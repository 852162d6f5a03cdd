"""The one SSE parser: events come out whole however the bytes were split."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from smallfirst.wire.sse import SseDecoder, SseEvent, sse_events

STREAM = (
    b": keep-alive\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: line one\ndata: line two\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)


def decode(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.close()


def test_events_comments_names_and_multi_line_data() -> None:
    events = decode([STREAM])
    assert [(e.event, e.data) for e in events] == [
        (None, None),
        ("message_start", b'{"a": 1}'),
        (None, b"line one\nline two"),
        (None, b"no-space"),
        (None, b"[DONE]"),
    ]
    assert b"".join(e.raw for e in events) == STREAM  # the relay forwards these bytes as they came


def test_every_split_point_gives_the_same_events() -> None:
    whole = decode([STREAM])
    for cut in range(1, len(STREAM)):
        assert decode([STREAM[:cut], STREAM[cut:]]) == whole
    assert decode([bytes([b]) for b in STREAM]) == whole


def test_crlf_and_cr_line_breaks_even_split_between_reads() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    for cut in range(1, len(crlf)):
        assert decode([crlf[:cut], crlf[cut:]]) == decode([STREAM])
    assert decode([STREAM.replace(b"\n", b"\r")]) == decode([STREAM])


def test_a_last_event_without_its_blank_line_is_not_lost() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b'data: {"x": 1}\n') == []
    assert [e.data for e in decoder.close()] == [b'{"x": 1}']
    assert decoder.close() == []


def test_multi_byte_characters_split_between_reads_decode_whole() -> None:
    raw = 'data: "héllo ✓"\n\n'.encode()
    cut = raw.index("✓".encode()) + 1  # inside the three bytes of the check mark
    assert [e.data for e in decode([raw[:cut], raw[cut:]])] == ['"héllo ✓"'.encode()]


async def test_sse_events_reads_an_httpx_stream_and_skips_comments() -> None:
    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(STREAM), 7):
            yield STREAM[i : i + 7]

    response = httpx.Response(200, content=body())
    events = [event async for event in sse_events(response)]
    assert events == [
        ("message_start", '{"a": 1}'),
        (None, "line one\nline two"),
        (None, "no-space"),
        (None, "[DONE]"),
    ]
