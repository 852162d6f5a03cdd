"""m006 on a ledger that predates it: rows kept (cached tokens 0), new rows carry them, and
the rollups sum them."""

from __future__ import annotations

from sqlalchemy import create_engine

from smallfirst.ledger import LedgerEntry, LedgerStore
from smallfirst.ledger import migrations as migrations_module
from smallfirst.ledger.report import summarize


def test_an_older_ledger_gains_cached_token_columns(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    before = [(n, fn) for n, fn in migrations_module.MIGRATIONS if n < "m006"]
    monkeypatch.setattr(migrations_module, "MIGRATIONS", before)
    engine = create_engine(url)
    with engine.begin() as conn:
        migrations_module.migrate(conn)
        conn.exec_driver_sql(
            "INSERT INTO requests (request_id, kind, hop, ts, endpoint, stream, input_tokens, "
            "output_tokens, cost_usd, baseline_cost_usd, status, model, tier) VALUES "
            "('old', 'request', 0, 1.0, 'chat', 0, 10, 1, 0.5, 1.0, 200, 's', 'small')"
        )
    engine.dispose()
    monkeypatch.undo()
    store = LedgerStore(url)
    try:
        store.insert(
            [
                LedgerEntry(
                    request_id="new", model="s", tier="small", input_tokens=10,
                    cached_input_tokens=7, cache_write_tokens=2,
                ).as_row()
            ]
        )  # fmt: skip
        rows = {row["request_id"]: row for row in store.rows()}
        assert rows["old"]["cached_input_tokens"] == 0
        assert (rows["new"]["cached_input_tokens"], rows["new"]["cache_write_tokens"]) == (7, 2)
        totals = summarize(store)["totals"]
        assert (totals["cached_input_tokens"], totals["cache_write_tokens"]) == (7, 2)
    finally:
        store.close()


def test_m006_is_a_no_op_on_columns_m003_already_made(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        names = {c.name for c in store.rollups.columns}
        assert {"cached_input_tokens", "cache_write_tokens"} <= names
    finally:
        store.close()
