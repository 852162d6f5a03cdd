"""The Responses input audit: a field the chat turns would drop is a 400 naming its path."""

from __future__ import annotations

from typing import Any

import pytest

from smallfirst.errors import InvalidRequestError
from smallfirst.wire.responses_fields import refuse_uncarried_input

USER = {"role": "user", "content": "hi"}
IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png"}


@pytest.mark.parametrize(
    ("items", "param", "says"),
    [
        ([{**USER, "foo": 1}], "input[0].foo", "not a field of the 'message' item"),
        ([USER, {**USER, "phase": "commentary"}], "input[1].phase", "documented by OpenAI"),
        (
            [{"role": "user", "content": [{"type": "input_text", "text": "x", "bar": 2}]}],
            "input[0].content[0].bar",
            "'input_text' part",
        ),
        (
            [{"role": "user", "content": [{**IMAGE, "file_id": "file-1"}]}],
            "input[0].content[0].file_id",
            "documented by OpenAI",
        ),
        (
            [
                {
                    "type": "function_call",
                    "call_id": "c",
                    "name": "f",
                    "arguments": "{}",
                    "namespace": "n",
                }
            ],
            "input[0].namespace",
            "documented by OpenAI",
        ),
        (
            [{"type": "function_call_output", "call_id": "c", "output": "x", "name": "f"}],
            "input[0].name",
            "'function_call_output' item",
        ),
        (
            [
                {
                    "type": "function_call",
                    "call_id": "c",
                    "name": "f",
                    "arguments": "{}",
                    "caller": {"type": "program", "caller_id": "p"},
                }
            ],
            "input[0].caller",
            "documented by OpenAI",
        ),
    ],
)
def test_an_uncarried_field_is_refused_by_its_path(
    items: list[dict[str, Any]], param: str, says: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        refuse_uncarried_input(items)
    assert err.value.param == param
    assert err.value.message.startswith(param) and says in err.value.message


def test_labels_nulls_and_defaults_carry_nothing_and_pass() -> None:
    refuse_uncarried_input(
        [
            {**USER, "type": "message", "id": "msg_1", "status": "completed", "phase": None},
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "x",
                        "prompt_cache_breakpoint": {"mode": "explicit"},
                    },
                    {**IMAGE, "detail": "high", "file_id": None},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "y", "annotations": [], "logprobs": []}
                ],
            },
            {
                "type": "function_call",
                "call_id": "c",
                "name": "f",
                "arguments": "{}",
                "caller": {"type": "direct"},
                "namespace": None,
            },
            {"type": "function_call_output", "call_id": "c", "output": "18C", "name": None},
        ]
    )


@pytest.mark.parametrize(
    "items",
    [
        "just text",
        [{"type": "reasoning", "summary": [], "foo": 1}],
        [5],
        [{"role": "user", "content": [{"type": "input_file", "x": 1}]}],
    ],
)
def test_what_is_not_a_known_item_or_part_is_left_to_validation(items: Any) -> None:
    refuse_uncarried_input(items)
