"""Each replica's view of the current policies, re-read from the shared database.

The learner (on any replica, or `smallfirst learn` anywhere) writes a policy version to the
ledger's database; every gateway re-reads the latest versions every `learn.reload_s`, so a
new policy reaches all replicas without a restart. Serving reads the in-memory copy only.
"""

from __future__ import annotations

import asyncio
import logging

from smallfirst.config import LearnConfig
from smallfirst.learning.records import Policy
from smallfirst.learning.store import LearningStore

log = logging.getLogger("smallfirst.learning")


class PolicyBook:
    def __init__(self, store: LearningStore, config: LearnConfig) -> None:
        self.store = store
        self.config = config
        self._current: dict[str, Policy] = {}

    async def refresh(self) -> None:
        """Read every task's latest version (off the event loop: it is a database query)."""
        self._current = await asyncio.to_thread(self.store.current_policies)

    async def keep_fresh(self) -> None:
        """Refresh every `reload_s`, forever; a failed read keeps the last policies."""
        while True:
            await asyncio.sleep(self.config.reload_s)
            try:
                await self.refresh()
            except Exception:  # a database hiccup must not stop serving or refreshing
                log.exception("learning: could not re-read the policies; keeping the last ones")

    def get(self, task: str | None) -> Policy | None:
        return None if task is None else self._current.get(task)

    def all(self) -> dict[str, Policy]:
        return dict(self._current)
