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
