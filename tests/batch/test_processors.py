"""A chat-shaped batch item (`messages`, or an OpenAI Batch line's `body`) is validated and
audited as the gateway's chat body: every honoured field reaches the model, metadata passes,
and a field a batch cannot honour is an item error naming its path; text items keep their
own checks (their other keys are the user's data)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smallfirst.batch import BatchOptions, WorkSpec, run_batch
from smallfirst.batch.processors import chat_of
from smallfirst.config import load_config
from smallfirst.errors import InvalidRequestError
from smallfirst.models.registry import Registry
from smallfirst.testing import BackgroundServer, Script
from smallfirst.types import TokenLogprob, ToolCall
from smallfirst.wire.render import answer_json
from tests.batch.conftest import read_jsonl, write_jsonl

HI = [{"role": "user", "content": "hi"}]
HONOURED = {
    "max_completion_tokens": 7,
    "temperature": 0.5,
    "top_p": 0.9,
    "stop": "\n",
    "seed": 42,
    "n": 1,
    "logprobs": True,
    "top_logprobs": 2,
}
METADATA = {"user": "u-1", "metadata": {"run": "nightly"}, "store": False}
IMAGE_FOO = {"type": "image_url", "image_url": {"url": "https://x/c.png", "foo": 1}}


def batch_line(**body: Any) -> dict[str, Any]:
    return {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": body}


@pytest.mark.parametrize(
    "item",
    [
        {"id": "a", "messages": HI, **HONOURED, **METADATA},
        batch_line(model="gpt-4o", messages=HI, **HONOURED, **METADATA),
    ],
)
def test_every_honoured_field_of_a_chat_item_is_honoured(item) -> None:
    request = chat_of(item, "m", 256)
    params = request.params
    assert (params.max_tokens, params.max_tokens_name) == (7, "max_completion_tokens")
    assert (params.temperature, params.top_p, params.stop, params.seed) == (0.5, 0.9, ["\n"], 42)
    assert params.logprobs and params.top_logprobs == 2
    assert [(m.role, m.content) for m in request.messages] == [("user", "hi")]


def test_a_chat_item_without_a_limit_gets_the_jobs() -> None:
    assert chat_of({"messages": HI}, "m", 256).params.max_tokens == 256
    assert chat_of({"messages": HI, "max_tokens": 9}, "m", 256).params.max_tokens == 9


def test_a_developer_turn_is_a_system_turn_as_on_the_gateway() -> None:
    request = chat_of({"messages": [{"role": "developer", "content": "terse"}, *HI]}, "m", 5)
    assert [m.role for m in request.messages] == ["system", "user"]


@pytest.mark.parametrize("wrap", [lambda f: {"id": "a", **f}, lambda f: batch_line(**f)])
@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"messages": HI, "frequency_penalty": 0.5}, "frequency_penalty", "only honoured"),
        ({"messages": HI, "top_k": 5}, "top_k", "unknown here"),
        ({"messages": HI, "text": "beside the turns"}, "text", "unknown here"),
        ({"messages": [{**HI[0], "foo": 1}]}, "messages[0].foo", "unknown here"),
        (
            {"messages": [{"role": "user", "content": [IMAGE_FOO]}]},
            "messages[0].content[0].image_url.foo",
            "unknown here",
        ),
        ({"messages": HI, "n": 2}, "n", "less than or equal to 1"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "Input"),
    ],
)
def test_a_field_a_batch_cannot_honour_is_an_item_error_naming_it(
    wrap, fields, param, says
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        chat_of(wrap(fields), "m", 256)
    assert err.value.param == param
    assert err.value.message.startswith(param) and says in err.value.message
    if "honoured" in says or "unknown" in says:
        assert "smallfirst batch never passes through" in err.value.message


def test_a_text_items_other_keys_are_its_data() -> None:
    request = chat_of({"id": "a", "text": "hi", "top_k": 5, "label": "x"}, "m", 256)
    assert request.messages[0].content == "hi" and request.params.max_tokens == 256


def processor(config: Any) -> Any:
    return WorkSpec(model="m", config=str(config)).build(Registry(load_config(config)))


async def test_a_batch_sends_every_honoured_field_and_rejects_the_rest_by_path(
    upstream_config, tmp_path
) -> None:
    upstream, config = upstream_config
    honoured = {k: v for k, v in HONOURED.items() if not k.endswith("logprobs")}
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            batch_line(model="m", messages=HI, **honoured, **METADATA),
            {"id": "bad", "messages": [{"role": "user", "content": [IMAGE_FOO]}]},
            {"id": "fwd", "messages": HI, "presence_penalty": 1.0},
        ],
    )
    out = tmp_path / "out.jsonl"
    summary = await run_batch(processor(config), BatchOptions(source, out))
    assert (summary.done, summary.rejected) == (1, 2)
    [sent] = upstream.received
    assert sent["max_completion_tokens"] == 7 and "max_tokens" not in sent
    sampled = (sent["top_p"], sent["stop"], sent["seed"], sent["temperature"])
    assert sampled == (0.9, ["\n"], 42, 0.5)
    assert "user" not in sent and "metadata" not in sent  # they never change the answer
    rejects = {r["id"]: r["reason"] for r in read_jsonl(out.with_name("out.rejects.jsonl"))}
    assert rejects["bad"].startswith("messages[0].content[0].image_url.foo is unknown here")
    assert rejects["fwd"].startswith("presence_penalty is only honoured")


async def test_a_batch_lines_answer_carries_its_tool_calls(upstream_config, tmp_path) -> None:
    upstream, config = upstream_config
    upstream.enqueue(Script(text="", tool_calls=[ToolCall("call-1", "lookup", '{"q": "x"}')]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    source = write_jsonl(tmp_path / "in.jsonl", [batch_line(messages=HI, tools=tools)])
    out = tmp_path / "out.jsonl"
    await run_batch(processor(config), BatchOptions(source, out))
    [choice] = read_jsonl(out)[0]["response"]["body"]["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"


@pytest.fixture
def logprob_config(tmp_path) -> Iterator[Any]:
    """An OpenAI-compatible upstream that answers every chat with one scored token."""

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        answer = answer_json(
            "u-1",
            body["model"],
            "yes",
            True,
            usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            logprobs=[TokenLogprob("yes", -0.25, {"yes": -0.25, "no": -1.5})],
        )
        return JSONResponse(answer)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with BackgroundServer(app) as server:
        config = tmp_path / "smallfirst.yaml"
        config.write_text(
            f"default_model: m\nmodels:\n  - {{name: m, backend: openai, base_url: "
            f"'{server.url}/v1', price: {{input: 1, output: 2}}}}\n"
        )
        yield config


async def test_asked_for_logprobs_come_back_in_both_output_shapes(logprob_config, tmp_path):
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "plain", "messages": HI, "logprobs": True, "top_logprobs": 2},
            batch_line(messages=HI, logprobs=True),
            {"id": "unasked", "messages": HI},
        ],
    )
    out = tmp_path / "out.jsonl"
    await run_batch(processor(logprob_config), BatchOptions(source, out))
    plain, line, unasked = read_jsonl(out)
    [scored] = plain["logprobs"]["content"]
    assert scored["token"] == "yes"
    assert scored["top_logprobs"][1] == {"token": "no", "logprob": -1.5}
    [choice] = line["response"]["body"]["choices"]
    assert choice["logprobs"]["content"][0]["logprob"] == -0.25
    assert "logprobs" not in unasked
