"""API keys: shape, hashing, limits validation, revocation."""

from __future__ import annotations

import pytest

from smallfirst.errors import InvalidRequestError, NotFoundError
from smallfirst.ledger import KeyStore, LedgerStore
from smallfirst.ledger.keys import hash_key, key_id_of


@pytest.fixture
def keys(tmp_path):
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    yield KeyStore(store)
    store.close()


def test_create_stores_only_the_hash(keys) -> None:
    key, secret = keys.create("team-a", budget_usd=5, rpm=60, tpm=1000)
    assert secret.startswith(f"sf-{key.id}-") and key_id_of(secret) == key.id
    [stored] = keys.all()
    assert stored.key_hash == hash_key(secret) != secret
    assert (stored.budget_usd, stored.rpm, stored.tpm) == (5, 60, 1000)
    assert stored.matches(secret) and not stored.matches(secret[:-1])


@pytest.mark.parametrize("presented", ["", "sk-abc", "sf-", "sf-abc", "sf-abc-", "sf--x"])
def test_foreign_shapes_have_no_id(presented) -> None:
    assert key_id_of(presented) is None


def test_limits_must_be_positive(keys) -> None:
    with pytest.raises(InvalidRequestError, match="--rpm"):
        keys.create("x", rpm=0)
    with pytest.raises(InvalidRequestError, match="--budget"):
        keys.create("x", budget_usd=-1)


def test_revoke_by_id_or_name(keys) -> None:
    a, _ = keys.create("team-a")
    keys.create("team-b")
    keys.create("team-b")
    assert [k.id for k in keys.revoke(a.id)] == [a.id]
    assert len(keys.revoke("team-b")) == 2
    assert all(not k.active for k in keys.all())
    with pytest.raises(NotFoundError):
        keys.revoke("team-a")
