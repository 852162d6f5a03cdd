"""API keys: created and revoked by the CLI, checked by the gateway.

A key reads `sf-<id>-<secret>`. Only the sha256 of the whole key is stored; the public `id`
finds the row and `hmac.compare_digest` compares the hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from smallfirst.errors import InvalidRequestError, NotFoundError
from smallfirst.ledger.store import LedgerStore

PREFIX = "sf-"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    key_hash: str
    budget_usd: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    created_at: float = 0.0
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hash_key(presented), self.key_hash)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like ours."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX) :].partition("-")
    return key_id if sep and key_id and secret else None


class KeyStore:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.table = store.api_keys

    def create(
        self,
        name: str,
        budget_usd: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and never stored."""
        for value, label in ((budget_usd, "budget"), (rpm, "rpm"), (tpm, "tpm")):
            if value is not None and value <= 0:
                raise InvalidRequestError(f"--{label} must be positive, got {value}")
        key_id = secrets.token_hex(4)
        secret = f"{PREFIX}{key_id}-{secrets.token_urlsafe(24)}"
        key = ApiKey(key_id, name, hash_key(secret), budget_usd, rpm, tpm, time.time())
        with self.store.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    id=key.id,
                    name=key.name,
                    key_hash=key.key_hash,
                    budget_usd=key.budget_usd,
                    rpm=key.rpm,
                    tpm=key.tpm,
                    created_at=key.created_at,
                )
            )
        return key, secret

    def all(self) -> list[ApiKey]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(self.table).order_by(self.table.c.created_at))
            return [ApiKey(**dict(row._mapping)) for row in rows]

    def revoke(self, id_or_name: str) -> list[ApiKey]:
        """Revoke the key with this id, or every active key with this name."""
        matches = [k for k in self.all() if k.active and id_or_name in (k.id, k.name)]
        if not matches:
            raise NotFoundError(f"no active key with id or name {id_or_name!r}")
        now = time.time()
        with self.store.engine.begin() as conn:
            conn.execute(
                update(self.table)
                .where(self.table.c.id.in_([k.id for k in matches]))
                .values(revoked_at=now)
            )
        return matches
