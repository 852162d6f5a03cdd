"""`server.redact`: personal data is masked in the ledger's prompts and answers."""

from __future__ import annotations

import pytest

from smallfirst.server.redact import redact
from tests.server.gateway_helpers import running_gateway, scripted_config


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail jane.doe+x@example.co.uk now", "mail [email] now"),
        ("call +1 415-555-0132 or (020) 7946 0958", "call [phone] or [phone]"),
        ("card 4111 1111 1111 1111, exp 12/29", "card [card], exp 12/29"),
        ("card 4111-1111-1111-1112 (bad Luhn)", "card [card] (bad Luhn)"),
        ("iban DE89 3704 0044 0532 0130 00 ok", "iban [iban] ok"),
        ("ssn 078-05-1120", "ssn [ssn]"),
        ("order 12345, 3 items, 2026-11-24, v1.2.3", "order 12345, 3 items, 2026-11-24, v1.2.3"),
    ],
)
def test_patterns_mask_pii_and_keep_ordinary_numbers(text: str, masked: str) -> None:
    assert redact(text) == masked


def test_gateway_redacts_prompt_and_answer_in_the_ledger(scripted) -> None:
    upstream, base_url = scripted
    upstream.default.text = "Write to bob@corp.example or call 415-555-0199."
    config = scripted_config(base_url, redact=True)
    with running_gateway(config) as gw:
        content = "I am jane@example.com, card 4111 1111 1111 1111"
        for stream in (False, True):
            reply = gw.client().chat.completions.create(
                model="small", messages=[{"role": "user", "content": content}], stream=stream
            )
            if stream:
                list(reply)
        rows = gw.rows()
    assert upstream.received[0]["messages"][0]["content"] == content  # the model sees it all
    assert len(rows) == 2
    for row in rows:
        assert "jane@" not in row["prompt"] and "4111" not in row["prompt"]
        assert "[email]" in row["prompt"] and "[card]" in row["prompt"]
    assert rows[0]["response"] == "Write to [email] or call [phone]."


def test_without_redact_prompts_are_logged_verbatim(scripted) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url)) as gw:
        gw.client().chat.completions.create(
            model="small", messages=[{"role": "user", "content": "jane@example.com"}]
        )
        assert "jane@example.com" in gw.rows()[0]["prompt"]
