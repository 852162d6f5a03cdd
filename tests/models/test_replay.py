"""The replay book and the in-process `backend: replay` provider."""

from __future__ import annotations

import pytest

from smallfirst.config import Config
from smallfirst.errors import ConfigError, InvalidRequestError, UpstreamError
from smallfirst.models.registry import Registry
from smallfirst.models.replay import ReplayBook
from smallfirst.types import ChatRequest, CompletionRequest, Message


@pytest.fixture
def outcomes(tmp_path):
    path = tmp_path / "outcomes.csv"
    rows = [f"tweet number {i},{['positive', 'negative', 'neutral'][i % 3]}" for i in range(300)]
    path.write_text("prompt,label\n" + "\n".join(rows) + "\n")
    return path


def test_recorded_answers_match_exactly_or_inside_a_wrapped_prompt(outcomes):
    book = ReplayBook.from_csv(outcomes)
    assert book.reply("tweet number 4") == "negative"
    assert book.reply("Classify the sentiment.\nTweet: tweet number 14\nLabel:") == "neutral"
    few_shot = "Tweet: tweet number 299\nLabel: positive\nTweet: tweet number 4\nLabel:"
    assert book.reply(few_shot) == "negative"  # the question comes last
    with pytest.raises(InvalidRequestError) as info:
        book.reply("something never recorded")
    assert info.value.code == "replay_miss" and info.value.status == 400


def test_accuracy_degrades_answers_reproducibly(outcomes):
    truth = ReplayBook.from_csv(outcomes)
    book = ReplayBook.from_csv(outcomes, accuracy=0.7, seed=3)
    prompts = [f"tweet number {i}" for i in range(300)]
    right = sum(book.reply(p) == truth.reply(p) for p in prompts) / len(prompts)
    assert 0.6 < right < 0.8
    again = ReplayBook.from_csv(outcomes, accuracy=0.7, seed=3)
    assert [book.reply(p) for p in prompts] == [again.reply(p) for p in prompts]
    assert {book.reply(p) for p in prompts} <= {"positive", "negative", "neutral"}


def test_error_rate_injects_upstream_failures(outcomes):
    book = ReplayBook.from_csv(outcomes, error_rate=0.5, seed=1)
    failures = 0
    for _ in range(200):
        try:
            book.maybe_fail()
        except UpstreamError as exc:
            assert exc.upstream_status == 503
            failures += 1
    assert 70 < failures < 130


def test_bad_replay_files_and_options_are_config_errors(tmp_path, outcomes):
    with pytest.raises(ConfigError, match="does not exist"):
        ReplayBook.from_csv(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("question,verdict\na,b\n")
    with pytest.raises(ConfigError, match="needs a 'prompt' column"):
        ReplayBook.from_csv(bad)
    with pytest.raises(ConfigError, match="accuracy must be between 0 and 1"):
        ReplayBook.from_csv(outcomes, accuracy=1.5)


async def test_the_replay_backend_answers_in_process_with_usage_and_price(outcomes):
    config = Config.model_validate(
        {
            "models": [
                {
                    "name": "big",
                    "backend": "replay",
                    "tier": "large",
                    "price": {"input": 2.0, "output": 8.0},
                    "options": {"outcomes": str(outcomes)},
                }
            ]
        }
    )
    registry = Registry(config)
    provider = registry.provider("big")
    chat = await provider.chat(ChatRequest([Message("user", "tweet number 2")]))
    assert chat.text == "neutral" and chat.model == "big"
    assert chat.usage.input_tokens > 0 and chat.usage.output_tokens == 2
    assert registry.get("big").price.cost(chat.usage) > 0
    completion = await provider.complete(CompletionRequest("tweet number 0"))
    assert completion.text == "positive"
    streamed = [
        d.text async for d in provider.stream_chat(ChatRequest([Message("user", "tweet number 1")]))
    ]
    assert "".join(streamed) == "negative"


def test_the_replay_backend_needs_its_outcomes_option():
    config = Config.model_validate({"models": [{"name": "r", "backend": "replay"}]})
    with pytest.raises(ConfigError, match=r"needs options\.outcomes"):
        Registry(config).provider("r")
