"""Hypothesis against the request parsers: any bytes and any JSON give a parsed body or a 400
(`InvalidRequestError`), never another exception; and the same over real HTTP: no 5xx."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smallfirst.errors import InvalidRequestError
from smallfirst.wire.schemas import ChatBody, CompletionBody, EmbeddingBody, parse_json, validate
from tests.server.gateway_helpers import running_gateway, scripted_config

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = [
    "model", "messages", "prompt", "input", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "stop", "seed", "n", "stream", "stream_options", "logprobs", "top_logprobs",
    "response_format", "encoding_format", "role", "content", "json_schema", "schema", "type",
]  # fmt: skip
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "developer", "tool", "x"])},
    optional={"content": JSON, "name": JSON},
)
BODY = st.fixed_dictionaries(
    {"model": st.sampled_from(["small", "large", "", "auto", "nope"]) | JSON},
    optional={
        "messages": st.lists(MESSAGE, max_size=3) | JSON,
        "prompt": JSON,
        "input": JSON,
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["json_schema", "json_object", "text", "x"]) | JSON},
            optional={"json_schema": JSON},
        )
        | JSON,
        **{name: JSON for name in FIELDS[4:15]},
    },
)


def only_bad_request(call) -> None:
    try:
        call()
    except InvalidRequestError as exc:
        assert exc.status == 400 and exc.message


@given(st.binary(max_size=300))
def test_parse_json_never_crashes_on_bytes(raw: bytes) -> None:
    only_bad_request(lambda: parse_json(raw))


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@given(BODY)
@example({**CHAT, "response_format": {"type": "json_schema", "json_schema": "not an object"}})
@example({**CHAT, "response_format": {"type": "json_schema", "json_schema": [1]}})
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_validate_and_derived_values_never_crash(data: dict) -> None:
    def chat() -> None:
        body = validate(ChatBody, data)
        body.to_messages()
        body.params()

    def completion() -> None:
        body = validate(CompletionBody, data)
        assert isinstance(body.prompt_text, str)
        body.params()

    def embedding() -> None:
        assert all(isinstance(t, str) for t in validate(EmbeddingBody, data).texts)

    for call in (chat, completion, embedding):
        only_bad_request(call)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400),  # deeply nested: orjson refuses, no recursion
        (b'{"model": "small", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),
        (b'{"model": "small\x00", "messages": []}', 400),
        (b"\x00" * 64, 400),
        (b"x" * 3_000_000, 413),  # over server.max_body_bytes (2 MB)
    ],
)
def test_hostile_bodies_over_http(scripted, body: bytes, status: int) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            response = httpx.post(
                gw.url + path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == status, (path, response.text[:200])
            assert response.json()["error"]["message"]


def test_random_bodies_over_http_never_get_a_5xx(scripted) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw, httpx.Client(base_url=gw.url) as web:

        @given(BODY, st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]))
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        def check(data: dict, path: str) -> None:
            response = web.post(path, json=data)
            assert response.status_code < 500, (path, data, response.text[:300])
            if response.status_code != 200:
                assert response.json()["error"]["message"]

        check()
