"""The gateway on the embedded Gemma 3 270M (few calls, tiny max_tokens) and local MiniLM."""

from __future__ import annotations

import httpx
import openai
import pytest

from smallfirst.config import Config
from tests.server.gateway_helpers import running_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gw(embedded_model_path):
    with running_gateway(Config()) as running:
        yield running


def test_chat_and_stream_on_the_embedded_model(gw) -> None:
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Name a color."}], max_tokens=4
    )
    answer = raw.parse()
    assert raw.headers["x-smallfirst-model"] == "gemma-3-270m"
    assert raw.headers["x-smallfirst-cost-usd"] == "0.00000000"
    assert answer.usage.completion_tokens <= 4 and answer.usage.prompt_tokens > 0
    assert answer.choices[0].finish_reason in ("stop", "length")
    chunks = list(
        client.completions.create(
            model="gemma-3-270m",
            prompt="The capital of France is",
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage.completion_tokens == 3
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.strip()
    rows = gw.rows()[-2:]
    assert [(r["endpoint"], r["stream"], r["status"]) for r in rows] == [
        ("chat", False, 200),
        ("completions", True, 200),
    ]
    assert rows[1]["output_tokens"] == 3 and rows[1]["response"] == text
    assert rows[1]["ttft_ms"] is not None


def test_prompt_longer_than_the_context_is_400(gw) -> None:
    long_prompt = "word " * 3000  # the embedded model is configured with a 2048-token context
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            result = gw.client().chat.completions.create(
                model="gemma-3-270m",
                messages=[{"role": "user", "content": long_prompt}],
                max_tokens=2,
                stream=stream,
            )
            list(result) if stream else None
        assert caught.value.body["code"] == "context_length_exceeded"
    assert [r["status"] for r in gw.rows()[-2:]] == [400, 400]


def test_minilm_embeddings(gw) -> None:
    result = gw.client().embeddings.create(model="minilm", input=["a cat", "a dog", "tax law"])
    vectors = [item.embedding for item in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 384
    dot = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    far = sum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert dot > far
    assert result.usage.prompt_tokens > 0
    plain = httpx.post(
        gw.url + "/v1/embeddings",
        json={"model": "minilm", "input": "a cat", "encoding_format": "float"},
    ).json()
    assert plain["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)
    with pytest.raises(openai.BadRequestError):  # the chat model does not embed
        gw.client().embeddings.create(model="gemma-3-270m", input="x")
    assert [r["status"] for r in gw.rows()[-3:]] == [200, 200, 400]
