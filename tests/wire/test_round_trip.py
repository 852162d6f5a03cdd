"""What the gateway renders, the wire module reads back: render -> parse -> collect gives
back the answer, for whole answers and for streams cut anywhere."""

from __future__ import annotations

import orjson
import pytest

from smallfirst.errors import UpstreamError
from smallfirst.types import Generation, TokenLogprob, Usage
from smallfirst.wire.collect import StreamCollector
from smallfirst.wire.parse import (
    choice_text,
    first_choice,
    parse_embeddings,
    parse_logprobs,
    parse_usage,
)
from smallfirst.wire.render import DONE, ChunkWriter, completion_json, embeddings_json
from smallfirst.wire.sse import SseDecoder

ANSWER = Generation(
    text='Paris — "the capital"\nof France.',
    model="small",
    finish_reason="length",
    usage=Usage(input_tokens=12, output_tokens=7),
)
PIECES = ["Paris", ' — "the', ' capital"\n', "of France."]


def streamed(chat: bool, include_usage: bool) -> bytes:
    writer = ChunkWriter("req-1", ANSWER.model, chat)
    events = [writer.role()] if chat else []
    events += [writer.text(piece) for piece in PIECES]
    events.append(writer.finish(ANSWER.finish_reason))
    if include_usage:
        events.append(writer.usage(ANSWER.usage))
    return b"".join([*events, DONE])


def collect(raw: bytes, pieces: int) -> StreamCollector:
    decoder, collector = SseDecoder(), StreamCollector("small")
    step = max(1, len(raw) // pieces)
    for start in range(0, len(raw), step):
        for event in decoder.feed(raw[start : start + step]):
            assert event.data is not None
            collector.add_data(event.data)
    return collector


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("pieces", [1, 3, 17, 10_000])
def test_a_rendered_stream_collects_back_into_the_answer(chat: bool, pieces: int) -> None:
    collector = collect(streamed(chat, include_usage=True), pieces)
    assert collector.done
    assert collector.parts == PIECES
    assert collector.answer("small") == ANSWER


def test_a_stream_without_its_usage_chunk_costs_nothing_it_did_not_report() -> None:
    collector = collect(streamed(chat=True, include_usage=False), 5)
    assert collector.text == ANSWER.text and not collector.has_usage
    assert collector.usage() == Usage()


@pytest.mark.parametrize("chat", [True, False])
def test_a_rendered_answer_parses_back(chat: bool) -> None:
    logprobs = [TokenLogprob("Paris", -0.25, {"Paris": -0.25, "Lyon": -2.0})]
    generation = Generation(ANSWER.text, "small", "stop", Usage(3, 4), logprobs=logprobs)
    body = orjson.loads(orjson.dumps(completion_json(generation, "req-2", chat=chat)))
    choice = first_choice(body, "small")
    assert body["object"] == ("chat.completion" if chat else "text_completion")
    assert choice_text(choice) == generation.text
    assert parse_usage(body["usage"]) == Usage(3, 4)
    assert body["usage"]["total_tokens"] == 7
    read = parse_logprobs(choice["logprobs"])
    assert read is not None and [(t.token, t.logprob) for t in read] == [("Paris", -0.25)]
    if chat:  # the legacy completions shape keeps only the chosen token's logprob per token
        assert read[0].top == {"Paris": -0.25, "Lyon": -2.0}


def test_every_chunk_is_a_complete_openai_chunk() -> None:
    for line in streamed(chat=True, include_usage=True).split(b"\n\n")[:-2]:
        chunk = orjson.loads(line.removeprefix(b"data: "))
        assert chunk["id"] == "req-1" and chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "small" and isinstance(chunk["created"], int)


def test_embeddings_render_and_parse_back_in_input_order() -> None:
    body = embeddings_json([[0.5, 1.0], [2.0, 0.0]], "minilm", prompt_tokens=4)
    body["data"].reverse()  # an upstream may list them in any order; `index` says which is which
    assert parse_embeddings(body, "minilm") == [[0.5, 1.0], [2.0, 0.0]]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


@pytest.mark.parametrize("answer", [[], {}, {"data": [{"index": 0}]}, {"data": [5]}])
def test_embeddings_without_vectors_are_an_upstream_error(answer: object) -> None:
    with pytest.raises(UpstreamError, match="'minilm' returned no embeddings"):
        parse_embeddings(answer, "minilm")
