"""The pass-through's failover keeps the request's meaning: a failing vision upstream falls
back past a text-only model (its skip is a hop row saying why) to one that takes the image,
streamed or not (official openai SDK, live gateway, real scripted upstreams)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from smallfirst.config import Config
from smallfirst.testing import Script, ScriptedUpstream
from tests.routing.upstreams import scripted_models
from tests.server.gateway_helpers import running_gateway

pytestmark = pytest.mark.slow

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
LOOK = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]


def config_for(urls: dict[str, str]) -> Config:
    models: list[dict[str, Any]] = [
        {"name": name, "backend": "openai", "base_url": url, "tier": "small", "timeout_s": 2.0}
        for name, url in urls.items()
    ]
    models[1]["capabilities"] = {"vision": False}
    failover = {"retries": 0, "fallbacks": {"eye": ["text", "eye2"]}}
    return Config.model_validate({"models": models, "failover": failover})


@pytest.fixture
def upstreams() -> Iterator[tuple[dict[str, ScriptedUpstream], dict[str, str]]]:
    with scripted_models("eye", "text", "eye2") as (scripted, urls):
        scripted["eye"].default = Script("error", status=503)
        scripted["text"].default = Script(text="no image here")
        scripted["eye2"].default = Script(text="a cat")
        yield scripted, urls


@pytest.mark.parametrize("stream", [False, True])
def test_a_text_only_fallback_is_skipped_for_an_image(upstreams, stream) -> None:
    scripted, urls = upstreams
    with running_gateway(config_for(urls)) as gw:
        client = gw.client()
        if stream:
            chunks = client.chat.completions.create(
                model="eye", messages=LOOK, max_tokens=8, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            answer = client.chat.completions.create(model="eye", messages=LOOK, max_tokens=8)
            text = answer.choices[0].message.content or ""
        rows = gw.rows()
    assert text == "a cat"
    assert scripted["text"].received == []
    assert scripted["eye2"].received[0]["messages"][0]["content"][1] == IMAGE
    hops = [(h["step"], h["outcome"], h["model"]) for h in rows if h["kind"] == "hop"]
    assert ("failure", "skipped", "text") in hops and hops[-1] == ("answer", "ok", "eye2")
    (skip,) = [h for h in rows if h["kind"] == "hop" and h["outcome"] == "skipped"]
    assert skip["route_reason"] == "skipped: text lacks vision"
    (request,) = [r for r in rows if r["kind"] == "request"]
    assert (request["status"], request["model"]) == (200, "eye2")
