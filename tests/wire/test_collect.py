"""The one collector: usage in any chunk, errors, [DONE], malformed chunks, our Deltas."""

from __future__ import annotations

import orjson
import pytest

from smallfirst.errors import UpstreamError
from smallfirst.types import Delta, TokenLogprob, Usage
from smallfirst.wire.collect import StreamCollector

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def chunk(text: str | None = None, finish: str | None = None, **extra: object) -> dict:
    choice = {"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}
    return {"choices": [choice], **extra}


def test_usage_from_a_usage_only_chunk_with_no_choices() -> None:
    collector = StreamCollector()
    collector.add_chunk(chunk("hi", "stop"))
    assert collector.add_chunk({"choices": [], "usage": USAGE}) == []
    assert collector.usage() == Usage(5, 2) and collector.finish_reason == "stop"


def test_usage_on_the_finishing_chunk_itself() -> None:
    collector = StreamCollector()
    pieces = collector.add_chunk(chunk("hi", "length", usage=USAGE))
    assert [p.text for p in pieces] == ["hi"]
    assert collector.usage() == Usage(5, 2) and collector.finish_reason == "length"


def test_a_broken_count_fails_when_the_usage_is_read_not_when_the_text_arrives() -> None:
    collector = StreamCollector("small")
    collector.add_chunk(chunk("hi"))
    collector.add_chunk({"choices": [], "usage": {"prompt_tokens": -1}})
    assert collector.text == "hi" and collector.has_usage
    with pytest.raises(UpstreamError, match=r"'small' reported an invalid usage\.prompt_tokens"):
        collector.usage()


def test_done_error_and_malformed_data() -> None:
    collector = StreamCollector("small")
    assert collector.add_data(b"[DONE]") == [] and collector.done
    collector.add_data(b'{"error": {"message": "overloaded"}}')
    assert collector.error == {"message": "overloaded"}
    for bad in (b"{broken", b"5", b"[1, 2]"):
        with pytest.raises(UpstreamError, match="'small' sent a malformed stream chunk"):
            collector.add_data(bad)


def test_completion_chunks_and_logprobs() -> None:
    collector = StreamCollector()
    logprobs = {"tokens": ["a"], "token_logprobs": [-0.5]}
    pieces = collector.add_data(orjson.dumps({"choices": [{"text": "a", "logprobs": logprobs}]}))
    assert pieces == [Delta(text="a", logprobs=[TokenLogprob("a", -0.5)])]
    assert collector.answer("m").logprobs == [TokenLogprob("a", -0.5)]


def test_our_deltas_fold_the_same_way() -> None:
    collector = StreamCollector()
    for delta in (Delta("a"), Delta("b"), Delta(finish_reason="stop", usage=Usage(1, 2))):
        collector.add_delta(delta)
    answer = collector.answer("small")
    assert (answer.text, answer.finish_reason, answer.usage) == ("ab", "stop", Usage(1, 2))


def test_nothing_collected_is_an_empty_answer_at_zero_cost() -> None:
    answer = StreamCollector().answer("small")
    assert (answer.text, answer.finish_reason, answer.usage) == ("", "stop", Usage())


def test_a_streamed_refusal_is_kept_piece_by_piece() -> None:
    collector = StreamCollector()
    pieces = [
        *collector.add_chunk({"choices": [{"index": 0, "delta": {"refusal": "I can't "}}]}),
        *collector.add_chunk({"choices": [{"index": 0, "delta": {"refusal": "help."}}]}),
        *collector.add_chunk(chunk(finish="stop", usage=USAGE)),
    ]
    assert [p.refusal for p in pieces] == ["I can't ", "help."]
    assert collector.answer("m").refusal == "I can't help."
    plain = StreamCollector()
    plain.add_chunk(chunk("hi", "stop", usage=USAGE))
    assert plain.answer("m").refusal is None
