"""The same ledger and gateway on PostgreSQL: migrations, rows, keys and spend."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from smallfirst.ledger import LedgerStore
from smallfirst.ledger.migrations import MIGRATIONS
from tests.server.gateway_helpers import running_gateway, scripted_config
from tests.server.pg_cluster import fresh_database, postgres_url  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def ledger_url(postgres_url: str) -> str:  # noqa: F811 - the fixture above
    return fresh_database(postgres_url, "ledger")


def test_gateway_ledger_on_postgres(scripted, ledger_url: str) -> None:
    _upstream, base_url = scripted
    with running_gateway(scripted_config(base_url), ledger_url=ledger_url, auth=True) as gw:
        key, secret = gw.create_key("team-pg", budget_usd=1.0)
        client = gw.client(api_key=secret)
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "a"}])
        list(
            client.chat.completions.create(
                model="large", messages=[{"role": "user", "content": "b"}], stream=True
            )
        )
        rows = gw.rows()
    assert [(r["model"], r["stream"], r["status"], r["key_name"]) for r in rows] == [
        ("small", False, 200, "team-pg"),
        ("large", True, 200, "team-pg"),
    ]
    store = LedgerStore(ledger_url)  # reopening applies no migration twice
    with store.engine.connect() as conn:
        applied = conn.execute(text("SELECT name FROM _smallfirst_migrations")).scalars().all()
    assert sorted(applied) == sorted(name for name, _ in MIGRATIONS)
    assert store.spend_by_key()[key.id] == pytest.approx(sum(r["cost_usd"] for r in rows))
    store.close()


def test_ledger_sessions_run_without_jit(ledger_url: str) -> None:
    """JIT compiling a short rollup read cost more than it saved (see `_connect_args`)."""
    store = LedgerStore(ledger_url)
    for _ in range(2):  # every pooled connection, not just the first
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW jit")).scalar() == "off"
            conn.rollback()
    store.close()
