"""A fallback must honour the request as the model it replaces would have: a failing vision
model falls back past a text-only model (a hop says why) to one that takes the image, on
the provider path, streamed or not (real scripted upstreams)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smallfirst.errors import UpstreamError
from smallfirst.models.registry import Registry
from smallfirst.routing.hops import HopLog
from smallfirst.target import Targets
from smallfirst.testing import Script, ScriptedUpstream
from smallfirst.types import ChatRequest, GenerationParams, Message
from tests.routing.upstreams import registry_for, scripted_models

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
LOOK = ChatRequest(
    [Message.from_openai({"role": "user", "content": [{"type": "text", "text": "What?"}, IMAGE]})],
    GenerationParams(max_tokens=8),
)
TIERS = {"eye": "small", "text": "small", "eye2": "large"}


@pytest.fixture
def models() -> Iterator[tuple[dict[str, ScriptedUpstream], Registry]]:
    with scripted_models(*TIERS) as (upstreams, urls):
        upstreams["eye"].default = Script("error", status=503)
        upstreams["text"].default = Script(text="no image here")
        upstreams["eye2"].default = Script(text="a cat")
        registry = registry_for(
            urls, TIERS, failover={"retries": 0, "fallbacks": {"eye": ["text", "eye2"]}}
        )
        registry.config.models[1].capabilities.vision = False
        yield upstreams, Registry(registry.config)


@pytest.mark.parametrize("stream", [False, True])
def test_a_text_only_fallback_is_skipped_for_an_image(models, stream) -> None:
    upstreams, registry = models
    target = Targets(registry).resolve("eye")
    log = HopLog()
    told: list[str] = []
    if stream:
        deltas = list(target.stream_sync(LOOK, log=log, on_model=told.append))
        text = "".join(d.text for d in deltas if d.text)
    else:
        text = target.generate_sync(LOOK, log=log, on_model=told.append).text
    assert (text, told) == ("a cat", ["eye2"])
    assert upstreams["text"].received == []
    assert upstreams["eye2"].received[0]["messages"][0]["content"][1] == IMAGE
    skipped = [h for h in log.hops if h.outcome == "skipped"]
    assert [(h.model, h.detail) for h in skipped] == [("text", "skipped: text lacks vision")]
    assert [(h.kind, h.model) for h in log.hops][-1] == ("answer", "eye2")


def test_a_text_request_may_still_fall_back_to_the_text_model(models) -> None:
    upstreams, registry = models
    answer = (
        Targets(registry)
        .resolve("eye")
        .generate_sync(ChatRequest([Message("user", "hi")], GenerationParams(max_tokens=8)))
    )
    assert answer.model == "text" and upstreams["eye2"].received == []


def test_with_no_fallback_able_to_serve_it_the_failure_is_the_error(models) -> None:
    upstreams, registry = models
    registry.config.models[2].capabilities.vision = False
    registry = Registry(registry.config)
    log = HopLog()
    with pytest.raises(UpstreamError, match="503"):
        Targets(registry).resolve("eye").generate_sync(LOOK, log=log)
    assert upstreams["text"].received == [] and upstreams["eye2"].received == []
    assert [h.model for h in log.hops if h.outcome == "skipped"] == ["text", "eye2"]
