"""Every field of the official SDK's chat `create` is classified, and the README's table says
what the code does."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from openai.resources.chat.completions import Completions

from smallfirst.errors import InvalidRequestError
from smallfirst.wire.fields import FORWARDED, HONOURED, METADATA, refuse_unforwardable

README = Path(__file__).resolve().parents[2] / "README.md"
SDK_ONLY = {"self", "extra_headers", "extra_query", "extra_body", "timeout"}


def readme_table() -> dict[str, str]:
    section = README.read_text().split("### Request fields: honoured, or refused by name")[1]
    rows: dict[str, str] = {}
    for line in section.split("\n\n| field | handling |")[1].split("\n\n")[0].splitlines()[2:]:
        fields, handling = line.strip("|").split("|")
        for name in re.findall(r"`([a-z_]+)`", fields):
            rows[name] = handling.strip()
    return rows


def test_every_sdk_field_is_classified() -> None:
    sdk = set(inspect.signature(Completions.create).parameters) - SDK_ONLY
    assert sdk <= HONOURED | METADATA | FORWARDED, sdk - (HONOURED | METADATA | FORWARDED)


def test_the_readme_table_matches_the_code() -> None:
    rows = readme_table()
    assert set(rows) == HONOURED | METADATA | FORWARDED
    assert {name for name, how in rows.items() if how == "metadata"} == METADATA
    assert {name for name, how in rows.items() if how == "forwarded only"} == FORWARDED


def test_a_forwarded_only_field_is_refused_by_name() -> None:
    refuse_unforwardable({"model": "m", "user": "u", "messages": []}, "gemma")
    with pytest.raises(InvalidRequestError) as err:
        refuse_unforwardable({"model": "m", "presence_penalty": 1.0}, "gemma")
    assert err.value.param == "presence_penalty" and "'gemma'" in err.value.message
    with pytest.raises(InvalidRequestError, match="unknown here"):
        refuse_unforwardable({"top_k": 5}, "gemma")


def _with_part(part: dict[str, object]) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": [TEXT, part]}]}


TEXT = {"type": "text", "text": "what is this?"}


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://x/c.png", "foo": 1}},
            "messages[0].content[1].image_url.foo",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav", "rate": 8}},
            "messages[0].content[1].input_audio.rate",
        ),
        (
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA", "pages": 2}},
            "messages[0].content[1].file.pages",
        ),
    ],
)
def test_an_unknown_key_inside_a_part_object_is_refused_by_its_path(part, param) -> None:
    with pytest.raises(InvalidRequestError) as err:
        refuse_unforwardable(_with_part(part), "claude")
    assert err.value.param == param
    assert err.value.message.startswith(param) and "is unknown here" in err.value.message


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://x/c.png", "detail": "low"}},
        {"type": "image_url", "image_url": "https://x/c.png"},
        {"type": "image_url", "image_url": {"url": "https://x/c.png", "extra": None}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1", "filename": "a.pdf"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA"}},
    ],
)
def test_the_keys_a_part_object_keeps_pass(part) -> None:
    refuse_unforwardable(_with_part(part), "claude")
