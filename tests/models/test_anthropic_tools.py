"""The Anthropic backend against a real local server speaking the Messages API: a whole tool
round trip (call, result, final answer), streamed and not, and images as sent."""

import json

import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import UpstreamError
from smallfirst.models.anthropic import AnthropicProvider
from smallfirst.models.base import collect
from smallfirst.testing.anthropic_scripted import text_reply, tool_reply
from smallfirst.types import ChatRequest, ContentPart, GenerationParams, Message, Tool

WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)


def provider(url):
    return AnthropicProvider(
        ModelConfig(name="claude", backend="anthropic", tier="large", base_url=url)
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_round_trip(anthropic_upstream, stream):
    anthropic_upstream.enqueue(
        tool_reply(
            "get_weather",
            {"city": "Paris"},
            "toolu_01",
            usage={"input_tokens": 20, "output_tokens": 9},
        ),
        text_reply("It is 18C and sunny in Paris.", usage={"input_tokens": 40, "output_tokens": 8}),
    )
    p = provider(anthropic_upstream.url)
    ask = ChatRequest(
        [Message("user", "Weather in Paris?")],
        GenerationParams(max_tokens=50, tools=[WEATHER], tool_choice="required"),
    )

    async def answer(request):
        if stream:
            return await collect("claude", p.stream_chat(request))
        return await p.chat(request)

    first = await answer(ask)
    assert first.finish_reason == "tool_calls" and first.text == ""
    [call] = first.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "toolu_01",
        "get_weather",
        {"city": "Paris"},
    )
    assert (first.usage.input_tokens, first.usage.output_tokens) == (20, 9)
    sent = anthropic_upstream.received[-1]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"] == WEATHER.parameters

    follow_up = ChatRequest(
        [
            *ask.messages,
            Message("assistant", "", tool_calls=first.tool_calls),
            Message("tool", "18C sunny", tool_call_id=call.id),
        ],
        ask.params,
    )
    final = await answer(follow_up)
    assert final.text == "It is 18C and sunny in Paris." and final.finish_reason == "stop"
    assert anthropic_upstream.received[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "18C sunny"}],
                }
            ],
        },
    ]
    await p.aclose()


async def test_cache_tokens_in_stream_usage(anthropic_upstream):
    usage = {
        "input_tokens": 4,
        "output_tokens": 2,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 50,
    }
    anthropic_upstream.enqueue(text_reply("hi", usage=usage))
    p = provider(anthropic_upstream.url)
    deltas = [d async for d in p.stream_chat(ChatRequest([Message("user", "hi")]))]
    last = deltas[-1].usage
    assert (last.input_tokens, last.cached_input_tokens, last.cache_write_tokens) == (
        1054,
        1000,
        50,
    )
    await p.aclose()


async def test_images_arrive_intact(anthropic_upstream):
    parts = [
        ContentPart("text", text="Describe both."),
        ContentPart("image", url=f"data:image/png;base64,{PNG}"),
        ContentPart("image", url="https://example.com/cat.jpg"),
    ]
    p = provider(anthropic_upstream.url)
    await p.chat(ChatRequest([Message("user", "Describe both.", parts=parts)]))
    assert anthropic_upstream.received[-1]["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    await p.aclose()


async def test_a_stream_cut_before_message_stop_is_an_error(anthropic_upstream):
    """A connection that ends mid-answer must not pass the text so far off as the answer."""
    anthropic_upstream.enqueue(text_reply("a long answer that never ends", cut_after=5))
    p = provider(anthropic_upstream.url)
    seen = []
    with pytest.raises(UpstreamError, match="ended the stream early"):
        async for delta in p.stream_chat(ChatRequest([Message("user", "hi")])):
            seen.append(delta.text)
    assert "".join(seen)  # some text came before the cut
    await p.aclose()
