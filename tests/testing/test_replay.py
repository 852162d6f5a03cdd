"""The replay server over real HTTP: the official OpenAI client and our own provider."""

from __future__ import annotations

import httpx
import pytest

from smallfirst.config import ModelConfig
from smallfirst.errors import InvalidRequestError, UpstreamError
from smallfirst.models.openai import OpenAIProvider
from smallfirst.models.replay import ReplayBook
from smallfirst.testing import BackgroundServer
from smallfirst.testing.replay import ReplayServer
from smallfirst.types import ChatRequest, Message


@pytest.fixture
def served(tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text('prompt,answer\n"What is 2+2?",4\n"Name a colour",blue\n')
    server = ReplayServer(ReplayBook.from_csv(path), model="gpt-replay")
    with BackgroundServer(server.app) as background:
        yield server, background.url + "/v1"


def test_the_openai_client_gets_recorded_answers(served):
    from openai import OpenAI

    _, url = served
    client = OpenAI(base_url=url, api_key="unused")
    reply = client.chat.completions.create(
        model="gpt-replay",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
    )
    assert reply.choices[0].message.content == "4"
    assert reply.usage.prompt_tokens > 0 and reply.model == "gpt-replay"
    stream = client.chat.completions.create(
        model="gpt-replay",
        messages=[{"role": "user", "content": "Name a colour"}],
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "blue"
    completion = client.completions.create(model="gpt-replay", prompt="Q: What is 2+2?\nA:")
    assert completion.choices[0].text == "4"


async def test_misses_and_bad_bodies_are_openai_errors(served):
    _, url = served
    provider = OpenAIProvider(ModelConfig(name="r", backend="openai", base_url=url))
    try:
        with pytest.raises(InvalidRequestError, match="no recorded answer"):
            await provider.chat(ChatRequest([Message("user", "unknown")]))
    finally:
        await provider.aclose()
    async with httpx.AsyncClient(base_url=url) as client:
        bad = await client.post("/chat/completions", content=b"{oops")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        empty = await client.post("/chat/completions", json={"messages": []})
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"


async def test_the_error_rate_answers_503s(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("prompt,answer\nq,a\n")
    server = ReplayServer(ReplayBook.from_csv(path, error_rate=1.0))
    with BackgroundServer(server.app) as background:
        provider = OpenAIProvider(
            ModelConfig(name="r", backend="openai", base_url=background.url + "/v1")
        )
        try:
            with pytest.raises(UpstreamError) as info:
                await provider.chat(ChatRequest([Message("user", "q")]))
        finally:
            await provider.aclose()
    assert info.value.upstream_status == 503 and server.failed == 1
