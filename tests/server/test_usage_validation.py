"""An upstream that reports impossible token counts (negative, astronomically large, not a
number): the client gets a 502 naming the field, the request still has its ledger row, the
key's spend never goes negative and its budget still holds afterwards (issue 16, item 5)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from smallfirst.server.limits import InMemoryLimiter, Reservation
from smallfirst.testing import Script
from tests.server.gateway_helpers import SMALL_PRICE, running_gateway, scripted_config

PROMPT = [{"role": "user", "content": "sixteen chars.."}]
"""Estimated at 16 // 4 + 1 = 5 tokens, what the scripted upstream bills by default."""
ONE_REQUEST_USD = (5 * SMALL_PRICE.input + 1 * SMALL_PRICE.output) / 1e6
"""5 prompt tokens and the 1-token answer "ok": admission's estimate equals the real cost."""
BUDGET_USD = 10.5 * ONE_REQUEST_USD
"""Room for ten requests, and no float rounding at the boundary."""


@pytest.mark.parametrize(
    ("script", "field"),
    [
        (Script(prompt_tokens=-1_000_000), "prompt_tokens"),
        (Script(prompt_tokens=1e30), "prompt_tokens"),
        (Script(prompt_tokens="abc"), "prompt_tokens"),
        (Script(prompt_tokens=2.5), "prompt_tokens"),
        (Script(prompt_tokens=True), "prompt_tokens"),
        (Script(completion_tokens=-5), "completion_tokens"),
    ],
    ids=["negative", "1e30", "text", "fraction", "bool", "negative-output"],
)
def test_bad_usage_is_a_502_with_a_row_and_the_budget_still_holds(
    scripted, tmp_path, script: Script, field: str
) -> None:
    upstream, base_url = scripted
    config = scripted_config(base_url)
    with running_gateway(config, ledger_url=f"sqlite:///{tmp_path / 'l.db'}", auth=True) as gw:
        key, secret = gw.create_key("team", budget_usd=BUDGET_USD)
        client = gw.client(api_key=secret)
        upstream.enqueue(script)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="small", messages=PROMPT, max_tokens=1)
        error = raised.value
        assert error.status_code == 502
        body: Any = error.body
        assert body["type"] == "upstream_error" and f"usage.{field}" in body["message"]
        request_id = error.response.headers["x-smallfirst-request-id"]
        [row] = [r for r in gw.rows(kind="request") if r["request_id"] == request_id]
        assert row["status"] == 502 and f"usage.{field}" in row["error"]
        assert row["cost_usd"] == 0 and row["input_tokens"] == row["output_tokens"] == 0
        assert gw.gateway.limiter.spent(key.id) == 0

        statuses = [send(client) for _ in range(15)]
        assert statuses[:10] == [200] * 10 and set(statuses[10:]) == {429}
        rows = [r for r in gw.rows(kind="request") if r["key_id"] == key.id]
        assert len(rows) == 16  # one row per request, refusals included
        spent = sum(r["cost_usd"] for r in rows)
        assert spent == pytest.approx(gw.gateway.limiter.spent(key.id))
        assert 0 <= spent <= BUDGET_USD * (1 + 1e-9)


def send(client: openai.OpenAI) -> int:
    try:
        client.chat.completions.create(model="small", messages=PROMPT, max_tokens=1)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def test_an_integral_float_count_is_accepted(scripted, tmp_path) -> None:
    upstream, base_url = scripted
    upstream.enqueue(Script(prompt_tokens=5.0))
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    with running_gateway(scripted_config(base_url), ledger_url=ledger_url) as gw:
        gw.client().chat.completions.create(model="small", messages=PROMPT)
        [row] = gw.rows(kind="request")
        assert row["status"] == 200 and row["input_tokens"] == 5


class SettlingFails(InMemoryLimiter):
    """A limits store that breaks after admission, when the request's real cost is settled."""

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        raise ConnectionError("limits store gone")


def test_the_row_is_recorded_even_when_settling_the_budget_fails(scripted, tmp_path) -> None:
    _upstream, base_url = scripted
    ledger_url = f"sqlite:///{tmp_path / 'l.db'}"
    limiter = SettlingFails()
    with running_gateway(
        scripted_config(base_url), ledger_url=ledger_url, auth=True, limiter=limiter
    ) as gw:
        key, secret = gw.create_key("team", budget_usd=BUDGET_USD)
        assert send(gw.client(api_key=secret)) == 500
        [row] = gw.rows(kind="request")
        assert row["key_id"] == key.id and row["cost_usd"] == pytest.approx(ONE_REQUEST_USD)
