"""The ledger benchmarks' own parts: bulk seeding builds the writer's ledger; the writer
comparison prints both stores side by side."""

import sys
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from ledger_traffic import bulk_seed, seed, traffic, whole_requests
from ledger_writer import main as writer_main
from smallfirst.ledger import LedgerStore, route_rollups
from smallfirst.ledger.rollups import COLUMNS, KEY_COLUMNS

NOW = 1_795_000_000.0


AGGREGATES = {  # table: (its columns, its group's columns); the traffic names no task
    "rollups": (COLUMNS, KEY_COLUMNS),
    "route_rollups": (
        (*route_rollups.KEY_COLUMNS, *route_rollups.MEASURES),
        route_rollups.KEY_COLUMNS,
    ),
}


def _contents(store: LedgerStore) -> tuple[list, dict[str, list]]:
    requests = store.requests
    groups = {}
    with store.engine.connect() as conn:
        raw = conn.execute(select(requests).order_by(requests.c.id)).all()
        for name, (columns, keys) in AGGREGATES.items():
            table = getattr(store, name)
            query = select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in keys))
            groups[name] = [tuple(row) for row in conn.execute(query)]
    return [tuple(row) for row in raw], groups


def test_bulk_seed_stores_what_the_writer_path_stores(tmp_path, monkeypatch) -> None:
    import ledger_traffic

    monkeypatch.setattr(ledger_traffic, "BULK_CHUNK", 97)  # many chunks, hops at their edges
    monkeypatch.setattr(ledger_traffic, "SEED_CHUNK", 89)
    bulk = LedgerStore(f"sqlite:///{tmp_path / 'bulk.db'}")
    writer = LedgerStore(f"sqlite:///{tmp_path / 'writer.db'}")
    assert bulk_seed(bulk, traffic(600, NOW)) == seed(writer, traffic(600, NOW))
    raw_bulk, groups_bulk = _contents(bulk)
    raw_writer, groups_writer = _contents(writer)
    assert raw_bulk == raw_writer
    assert any(row["outcome"] == "cache" for row in bulk.rows())  # the traffic has hits
    for name, (_, keys) in AGGREGATES.items():
        ours_all, theirs_all = groups_bulk[name], groups_writer[name]
        assert len(ours_all) == len(theirs_all) > 0, name
        for ours, theirs in zip(ours_all, theirs_all, strict=True):  # $ sums: float order
            assert ours[: len(keys)] == theirs[: len(keys)]
            for a, b in zip(ours, theirs, strict=True):
                assert a == b or abs(a - b) < 1e-9


def test_chunks_never_split_a_request_from_its_hops() -> None:
    chunks = list(whole_requests(traffic(300, NOW), size=7))
    assert sum(len(c) for c in chunks) > 300
    for chunk in chunks:
        assert chunk[0]["kind"] == "request"


def test_writer_benchmark_prints_both_stores_side_by_side(capsys) -> None:
    figures = writer_main(["--rows", "400", "--rounds", "2", "--paced-seconds", "0.2"])
    out = capsys.readouterr().out
    assert "writer rows/s with rollups" in out and "writer rows/s without" in out
    assert "rollups cost" in out
    assert set(figures["writer_rows_s"]) == {"with rollups", "without"}
    assert all(len(runs) == 2 for runs in figures["writer_rows_s"].values())
    assert "CPU us/row at 1,000 rows/s: with rollups" in out
    assert all(r > 0 for runs in figures["paced_cpu_us_per_row"].values() for r in runs)
