"""What a request needs, read from the request: a message's `name` and an image's `detail`
are needs like images and tools, named by their path."""

from __future__ import annotations

from smallfirst.config import ModelConfig
from smallfirst.models.capabilities import Capabilities, openai_compatible
from smallfirst.routing.requirements import Need, needs_of
from smallfirst.types import ChatRequest, ContentPart, GenerationParams, Message

IMAGE = "https://example.com/cat.png"


def needs(*messages: Message) -> list[Need]:
    return needs_of(ChatRequest(list(messages), GenerationParams()))


def test_a_message_name_is_a_need_named_by_its_path() -> None:
    assert needs(Message("user", "hi"), Message("user", "hi", name="ann")) == [
        Need("message_names", "messages[1].name")
    ]


def test_an_image_detail_other_than_auto_is_a_need_beside_vision() -> None:
    parts = [ContentPart("text", text="what?"), ContentPart("image", url=IMAGE, detail="high")]
    assert needs(Message("user", "what?", parts=parts)) == [
        Need("vision", "messages[0].content[1]"),
        Need("image_detail", "messages[0].content[1].image_url.detail"),
    ]


def test_auto_or_no_detail_and_an_empty_name_ask_for_nothing_more() -> None:
    parts = [ContentPart("image", url=IMAGE, detail="auto"), ContentPart("image", url=IMAGE)]
    assert needs(Message("user", "", parts=parts), Message("user", "x", name="")) == [
        Need("vision", "messages[0].content[0]")
    ]


def test_only_openai_compatible_models_keep_names_and_details_by_default() -> None:
    config = ModelConfig(name="o", backend="openai", base_url="https://api.example.com/v1")
    assert openai_compatible(config).message_names and openai_compatible(config).image_detail
    assert not Capabilities().message_names and not Capabilities().image_detail
