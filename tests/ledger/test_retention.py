"""Retention: old prompt text goes first, old rows later; spend and savings never move."""

from __future__ import annotations

import asyncio
import random
import time

from smallfirst.config import LedgerConfig, RetentionConfig
from smallfirst.ledger import LedgerEntry, LedgerStore
from smallfirst.ledger.escalations import escalation_summary
from smallfirst.ledger.report import summarize
from smallfirst.ledger.responses_store import ResponsesStore
from smallfirst.ledger.retention import DAY_S, prune, prune_pass
from tests.ledger.test_rollups import _traffic
from tests.server.gateway_helpers import running_gateway, scripted_config

NOW = 1_800_000_000.0


def _aged_ledger(tmp_path, count: int = 300) -> tuple[LedgerStore, list[LedgerEntry]]:
    """Requests (with hops and prompt text) spread over the last 500 days."""
    rng = random.Random(1)
    entries = _traffic(rng, count)
    ages = {}
    for entry in entries:
        age = ages.setdefault(entry.request_id, rng.uniform(0, 500) * DAY_S)
        entry.ts = NOW - age + (0.5 if entry.kind == "hop" else 0.0)
        entry.prompt, entry.response = f"question {entry.request_id}", "answer"
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    store.insert(entry.as_row() for entry in entries)
    return store, entries


def _totals(store: LedgerStore) -> tuple:
    return (
        store.spend_by_key(),
        summarize(store),
        summarize(store, since=NOW - 450 * DAY_S),
        escalation_summary(store),
    )


def test_pruning_never_changes_spend_or_savings_totals(tmp_path) -> None:
    store, entries = _aged_ledger(tmp_path)
    before = _totals(store)
    policy = RetentionConfig(prompts_days=30, rows_days=400, batch_rows=7)
    steps = []
    while not steps or not steps[-1].finished:  # the gateway's way: one small batch at a time
        steps.append(prune(store, policy, now=NOW, max_batches=1))
    assert len(steps) > 10
    rows = store.rows()
    assert all(r["ts"] >= NOW - 400 * DAY_S for r in rows)
    assert len(rows) == sum(e.ts >= NOW - 400 * DAY_S for e in entries)
    assert sum(s.rows for s in steps) == len(entries) - len(rows)
    for row in rows:
        kept = row["ts"] >= NOW - 30 * DAY_S
        assert (row["prompt"] is not None, row["response"] is not None) == (kept, kept)
    assert _totals(store) == before  # exactly: these come from the rollups
    again = prune(store, policy, now=NOW)
    assert (again.prompts, again.rows, again.finished) == (0, 0, True)
    store.close()


def test_a_batch_of_rows_at_one_instant_is_blanked_whole(tmp_path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'l.db'}")
    old = NOW - 40 * DAY_S
    store.insert(
        LedgerEntry(request_id=f"r{i}", ts=old, prompt="p", response="a").as_row()
        for i in range(25)
    )
    policy = RetentionConfig(prompts_days=30, rows_days=None, batch_rows=10)
    assert prune(store, policy, now=NOW).prompts == 25
    assert {r["prompt"] for r in store.rows()} == {None}
    store.close()


def test_none_keeps_everything(tmp_path) -> None:
    store, _entries = _aged_ledger(tmp_path, count=30)
    done = prune(store, RetentionConfig(prompts_days=None, rows_days=None), now=NOW)
    assert (done.prompts, done.rows, done.finished) == (0, 0, True)
    assert all(r["prompt"] is not None for r in store.rows())
    store.close()


def _chat(gw, content: str) -> None:
    gw.client().chat.completions.create(
        model="small", messages=[{"role": "user", "content": content}]
    )


def test_retention_with_log_prompts_off_and_with_redact(scripted, tmp_path) -> None:
    """Without log_prompts there is no text to blank and only rows age out; with redact the
    masked text is what is kept, then blanked; the key's spend stays either way."""
    _upstream, base_url = scripted
    for server in ({"log_prompts": False}, {"redact": True}):
        url = f"sqlite:///{tmp_path / f'{len(server)}{next(iter(server))}.db'}"
        config = scripted_config(base_url, **server)
        with running_gateway(config, ledger_url=url) as gw:
            _chat(gw, "mail me at alice@example.com")
            rows = gw.rows()
        prompt = rows[0]["prompt"]
        if server.get("log_prompts") is False:
            assert prompt is None
        else:
            assert prompt is not None and "alice@example.com" not in prompt
        store = LedgerStore(url)
        report = summarize(store)["totals"]
        later = time.time() + 31 * DAY_S
        done = prune(store, RetentionConfig(prompts_days=30, rows_days=400), now=later)
        assert done.prompts == (0 if server.get("log_prompts") is False else 1)
        assert store.rows()[0]["prompt"] is None
        gone = prune(store, RetentionConfig(prompts_days=30, rows_days=30), now=later)
        assert gone.rows == 1 and store.rows() == []
        assert summarize(store)["totals"] == report
        store.close()


def test_a_background_pass_ends_once_nothing_is_left(tmp_path) -> None:
    """A pass stops when a batch finds nothing; it once went on forever, a batch every 50 ms
    for the gateway's whole life, holding the GIL its model's decoding needs."""
    store, _entries = _aged_ledger(tmp_path)
    policy = RetentionConfig(prompts_days=30, rows_days=400, batch_rows=40)
    total = asyncio.run(asyncio.wait_for(prune_pass(store, policy), 60))
    assert total.finished and total.prompts > 40 and total.rows > 0
    again = asyncio.run(asyncio.wait_for(prune_pass(store, policy), 60))
    assert (again.finished, again.prompts, again.rows) == (True, 0, 0)
    store.close()


def test_a_background_pass_deletes_old_conversations_once_not_per_batch(
    tmp_path, monkeypatch
) -> None:
    """The conversations' delete is one statement for any number of them: a pass of many
    batches issues it once (it used to run before every batch)."""
    store, _entries = _aged_ledger(tmp_path)
    calls: list[float] = []
    original = ResponsesStore.delete_before

    def counted(self, before: float) -> int:
        calls.append(before)
        return original(self, before)

    monkeypatch.setattr(ResponsesStore, "delete_before", counted)
    policy = RetentionConfig(prompts_days=30, rows_days=400, batch_rows=20)
    start = time.time()
    total = asyncio.run(asyncio.wait_for(prune_pass(store, policy), 60))
    assert total.finished and total.prompts > 3 * 20
    assert len(calls) == 1 and calls[0] >= start - 30 * DAY_S
    store.close()


def test_the_gateway_prunes_in_the_background(scripted, tmp_path) -> None:
    _upstream, base_url = scripted
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = LedgerStore(url)
    store.insert(
        [
            LedgerEntry(request_id="old", ts=time.time() - 500 * DAY_S, prompt="p").as_row(),
            LedgerEntry(request_id="mid", ts=time.time() - 40 * DAY_S, prompt="p").as_row(),
        ]
    )
    store.close()
    config = scripted_config(base_url)
    config.ledger = LedgerConfig(retention=RetentionConfig(interval_s=0.05))
    with running_gateway(config, ledger_url=url) as gw:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = gw.rows()
            if [(r["request_id"], r["prompt"]) for r in rows] == [("mid", None)]:
                break
            time.sleep(0.05)
        assert [(r["request_id"], r["prompt"]) for r in rows] == [("mid", None)]
        assert summarize(gw.ledger.store)["totals"]["requests"] == 2
