"""Stored Responses API answers, in the ledger database (`responses` table, m007).

A stored response keeps the whole conversation that led to it, its own answer included, as
chat turns: a request naming it as `previous_response_id` continues from exactly those turns.
A response is visible only to the key that created it (with auth off, to requests without
a key).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, select

from smallfirst.ledger.store import LedgerStore
from smallfirst.types import Message

_TABLE = Table(
    "responses",
    MetaData(),
    Column("id", String(80), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("key_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("conversation", Text, nullable=False),
    Column("response", Text, nullable=False),
)


@dataclass(slots=True)
class StoredResponse:
    id: str
    conversation: list[Message]
    """Every turn so far, the response's own answer last (instructions are not kept: each
    request gives its own)."""
    response: dict[str, Any]
    """The response object as the client received it."""


class ResponsesStore:
    def __init__(self, store: LedgerStore) -> None:
        self.engine = store.engine

    def save(
        self,
        response_id: str,
        request_id: str,
        key_id: str | None,
        conversation: list[Message],
        response: dict[str, Any],
    ) -> None:
        row = {
            "id": response_id,
            "request_id": request_id,
            "key_id": key_id,
            "created_at": time.time(),
            "conversation": orjson.dumps([m.to_openai() for m in conversation]).decode(),
            "response": orjson.dumps(response).decode(),
        }
        with self.engine.begin() as conn:
            conn.execute(_TABLE.insert().values(row))

    def load(self, response_id: str, key_id: str | None) -> StoredResponse | None:
        """The response, if it exists and `key_id` may see it."""
        query = select(_TABLE).where(_TABLE.c.id == response_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None or row["key_id"] != key_id:
            return None
        turns = orjson.loads(row["conversation"])
        return StoredResponse(
            row["id"], [Message.from_openai(turn) for turn in turns], orjson.loads(row["response"])
        )

    def delete_before(self, before: float) -> int:
        """Drop responses stored before `before` (unix seconds): their conversations are
        prompt text, kept no longer than `ledger.retention.prompts_days`."""
        with self.engine.begin() as conn:
            return conn.execute(delete(_TABLE).where(_TABLE.c.created_at < before)).rowcount
