"""Steps that read the same pieces on one embedded model take turns per piece.

The embedded engine keeps each finished request's prompt in its KV cache and copies it to a
later request that starts with the same tokens. Task steps with `layout: input_first` over the
same pieces have prompts that start with the same piece, so when one step's call on a piece
has finished, the other steps' calls on it read only their own instruction. Two things stop
that from happening on its own: every step would start every piece at once (nothing has been
read yet to share), and with more pieces than slots the piece's cache is overwritten by other
pieces before the other steps get to it. So, per piece, one step goes first and the others
start when it is done, and only a few pieces are in flight at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from smallfirst.errors import SmallfirstError
from smallfirst.models.registry import Registry
from smallfirst.pipeline.spec import StepSpec
from smallfirst.tasks import Task


@dataclass(slots=True)
class _PieceTurns:
    left: int
    """Steps still to run on this piece; the last one frees its place in flight."""
    led: bool = False
    read: asyncio.Event = field(default_factory=asyncio.Event)


class SharedPieces:
    """Turns over the pieces of `steps` steps: the first step to reach a piece leads (it waits
    for one of `width` places in flight), the others follow once its call has finished."""

    def __init__(self, steps: int, width: int) -> None:
        self.steps = steps
        self._places = asyncio.Semaphore(width)
        self._pieces: dict[int, _PieceTurns] = {}

    def withdraw(self) -> None:
        """One of the steps will not run its pieces (skipped, or its inputs failed)."""
        self.steps -= 1
        for piece, turns in list(self._pieces.items()):
            turns.left -= 1
            if turns.left == 0:
                self._finish(piece, turns)

    @asynccontextmanager
    async def turn(self, piece: int) -> AsyncIterator[None]:
        """Piece number `piece` (the steps split the same text the same way)."""
        turns = self._pieces.get(piece)
        if turns is None:
            turns = self._pieces[piece] = _PieceTurns(left=self.steps)
        leads = not turns.led
        turns.led = True
        if leads:
            await self._places.acquire()
        else:
            await turns.read.wait()
        try:
            yield
        finally:
            turns.read.set()  # also when the leader failed: the others go on their own
            turns.left -= 1
            if turns.left == 0:
                self._finish(piece, turns)

    def _finish(self, piece: int, turns: _PieceTurns) -> None:
        del self._pieces[piece]
        if turns.led:
            self._places.release()


def shared_pieces(
    level: Sequence[StepSpec], tasks: dict[str, Task], registry: Registry
) -> dict[str, SharedPieces]:
    """For each step of `level` that shares its pieces with another one, their turns."""
    groups: dict[tuple[str, int, str], list[str]] = {}
    slots: dict[str, int] = {}
    for step in level:
        task = tasks.get(step.name)
        if task is None or not step.chunk_chars or task.spec.layout != "input_first":
            continue
        if step.escalate_if is not None:  # its model is only known once the condition ran
            continue
        try:
            entry = registry.get(step.model or task.spec.model or "default")
        except SmallfirstError:  # a router: which model reads the piece is decided per piece
            continue
        if not entry.capabilities.embedded:
            continue
        groups.setdefault((step.input, step.chunk_chars, entry.name), []).append(step.name)
        slots[entry.name] = entry.config.slots
    gates: dict[str, SharedPieces] = {}
    for (_, _, model), names in groups.items():
        if len(names) < 2:
            continue
        gate = SharedPieces(len(names), width=max(1, slots[model] // 2))
        gates.update({name: gate for name in names})
    return gates
