"""Each replica's policy book: re-read from the shared database, failures logged not raised."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sqlalchemy import text

from smallfirst.config import LearnConfig
from smallfirst.learning.policies import PolicyBook
from smallfirst.learning.records import Policy
from smallfirst.server import Gateway
from smallfirst.types import ChatRequest, Message

from ..server.gateway_helpers import scripted_config
from .learn_helpers import open_store


def small_policy(task: str = "extract") -> Policy:
    return Policy(task, 0, "small", ["small"], "proven on 200 comparisons", 0.95)


async def wait_for(check, tries: int = 500) -> bool:
    for _ in range(tries):
        if check():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_refresh_reads_the_latest_version_of_each_task(tmp_path: Path):
    store = open_store(tmp_path)
    book = PolicyBook(store, LearnConfig())
    await book.refresh()
    assert book.get("extract") is None and book.get(None) is None
    store.save_policy(small_policy())
    store.save_policy(Policy("extract", 0, "large", ["large"], "demoted", 0.95))
    await book.refresh()
    found = book.get("extract")
    assert found is not None and (found.version, found.serve) == (2, "large")


async def test_keep_fresh_survives_a_failed_read(tmp_path: Path, caplog):
    store = open_store(tmp_path)
    book = PolicyBook(store, LearnConfig(reload_s=0.01))
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE learn_policies RENAME TO learn_policies_away"))
    task = asyncio.create_task(book.keep_fresh())
    try:
        with caplog.at_level(logging.ERROR, "smallfirst.learning"):
            assert await wait_for(lambda: "could not re-read the policies" in caplog.text)
        assert not task.done()  # logged, never raised
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE learn_policies_away RENAME TO learn_policies"))
        store.save_policy(small_policy())
        assert await wait_for(lambda: book.get("extract") is not None)
    finally:
        task.cancel()


async def test_a_second_replica_picks_up_a_policy_without_a_restart(tmp_path: Path):
    """Two gateways over one SQLite ledger: a policy saved through one reaches the other on its
    next refresh, and its `auto` serves by it."""
    config = scripted_config("http://127.0.0.1:9/v1")
    config.learn = LearnConfig(reload_s=0.01)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = Gateway(config, ledger_url=url), Gateway(config, ledger_url=url)
    await first.start()
    await second.start()
    try:
        assert first.learning and second.learning and second.learning.policies
        request = ChatRequest([Message("user", "{}")], task="extract")
        auto = second.targets.resolve("auto")
        before = auto.route(request).decision
        assert before is not None and before.model == "large"
        assert before.reason == "learned extract v0: cold start on large, shadowing small"
        assert first.learning.store is not None
        first.learning.store.save_policy(small_policy())
        book = second.learning.policies
        assert await wait_for(lambda: book.get("extract") is not None)  # its keep_fresh
        after = auto.route(request).decision
        assert after is not None and after.model == "small"
        assert after.reason == "learned extract v1: small policy on small"
    finally:
        await first.stop()
        await second.stop()
