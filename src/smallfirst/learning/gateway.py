"""The gateway's handle on learning: present when the config has a `learn:` section.

It names each request's task before routing, hands every finished request to the shadow
scheduler (which works after the answer is sent), keeps each replica's policies fresh from
the shared database, and with `learn: {auto: true}` runs the learner in the background.
Nothing here may fail a client's request: every step after the answer logs and moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smallfirst.config import LearnConfig
from smallfirst.learning.store import LearningStore

if TYPE_CHECKING:
    from smallfirst.learning.policies import PolicyBook
    from smallfirst.learning.shadow import Shadower
    from smallfirst.learning.tasks import TaskNamer
    from smallfirst.server.call import Call
    from smallfirst.server.gateway import Gateway

log = logging.getLogger("smallfirst.learning")


class GatewayLearning:
    def __init__(self, gateway: Gateway, config: LearnConfig) -> None:
        from smallfirst.learning.tasks import TaskNamer

        self.gateway = gateway
        self.config = config
        self.namer: TaskNamer = TaskNamer(config)
        self.store: LearningStore | None = None
        self.policies: PolicyBook | None = None
        self.shadower: Shadower | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Called by `Gateway.start` once the ledger is open."""
        from smallfirst.learning.policies import PolicyBook
        from smallfirst.learning.shadow import Shadower

        ledger = self.gateway.ledger
        assert ledger is not None
        self.store = await asyncio.to_thread(LearningStore, ledger.store.engine)
        self.policies = PolicyBook(self.store, self.config)
        await self.policies.refresh()
        self.shadower = Shadower(self.gateway, self.store, self.config)
        self._spawn(self.policies.keep_fresh())
        if self.config.auto:
            from smallfirst.learning.learner import keep_learning

            self._spawn(keep_learning(self.gateway.registry, self.store, self.config))

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self.shadower is not None:
            await self.shadower.aclose()

    def task_of(self, data: Mapping[str, Any], headers: Mapping[str, str] | None,
                endpoint: str | None = None) -> str:  # fmt: skip
        """The task a request belongs to (`tasks.py`); `endpoint`: a cascade or task
        endpoint's name, which names the task when the request does not."""
        return self.namer.name(data, headers or {}, endpoint)

    def finished(self, call: Call) -> None:
        """A request's row is recorded: gather evidence about it off the response path."""
        if self.shadower is None or call.request is None or call.entry.status != 200:
            return
        try:
            self.shadower.after(call)
        except Exception:  # learning never fails a request
            log.exception("learning: could not schedule evidence for %s", call.request_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
