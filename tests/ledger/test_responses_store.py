"""Stored Responses API conversations: per key, and gone with old prompt text."""

from __future__ import annotations

import time

from smallfirst.config import RetentionConfig
from smallfirst.ledger import LedgerStore
from smallfirst.ledger.responses_store import ResponsesStore
from smallfirst.ledger.retention import DAY_S, prune
from smallfirst.types import Message, ToolCall

TURNS = [
    Message("user", "Weather in Paris?"),
    Message("assistant", "", tool_calls=[ToolCall("call_1", "get_weather", '{"city":"Paris"}')]),
]


def test_saved_for_one_key_and_pruned_with_prompt_text(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        responses = ResponsesStore(store)
        responses.save("resp_1", "req-1", "key-a", TURNS, {"id": "resp_1"})
        found = responses.load("resp_1", "key-a")
        assert found is not None and found.conversation == TURNS
        assert found.response == {"id": "resp_1"}
        assert responses.load("resp_1", "key-b") is None
        assert responses.load("resp_1", None) is None
        kept = prune(store, RetentionConfig(prompts_days=30, rows_days=None))
        assert kept.responses == 0 and responses.load("resp_1", "key-a") is not None
        later = time.time() + 31 * DAY_S
        pruned = prune(store, RetentionConfig(prompts_days=30, rows_days=None), now=later)
        assert pruned.responses == 1 and responses.load("resp_1", "key-a") is None
    finally:
        store.close()
