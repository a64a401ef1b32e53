"""Who runs which task here: the one map from a task id to the supervision that owns it.

An entry lives from the moment a task is given an actor until its supervision has
ended, across every restart of the actor in between. While no actor runs (between
a crash and the restart) commands wait in the entry and the next actor reads them
first, so nothing sent to a live task is lost or refused for want of an actor.

Today every owner is in this process. When several instances share a database,
ownership moves into PostgreSQL here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from supervisor.latch import Latch
from supervisor.messages import Command, Message


class Unowned(Exception):
    """The supervision ended before the command could be handed over: look again."""


@dataclass(eq=False)
class Owned:
    """The supervision of one live task in this process."""

    task_id: UUID
    #: The running actor's mailbox; None between two actors (after a crash or an outage).
    mailbox: MemoryObjectSendStream[Message] | None = None
    #: Commands for the next actor: sent while none ran, or left unread by the last one.
    pending: list[Command] = field(default_factory=list)
    #: Set by ``stop``: the actor is not restarted, whatever ends it.
    stopping: bool = False
    #: Set when the last actor saw the task end (persisted, or found, terminal).
    terminal: bool = False
    #: Set when the supervision has ended and every pending command has its answer.
    ended: Latch = field(default_factory=Latch)

    async def tell(self, command: Command) -> None:
        """Deliver to the running actor, or keep it for the next one (or for the end).

        Raises ``Unowned`` when the supervision has ended meanwhile.
        """
        if self.mailbox is not None:
            try:
                await self.mailbox.send(command)
                return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the actor ended while we waited; its successor (or the end) answers
        if self.ended.is_set():
            raise Unowned(self.task_id)
        self.pending.append(command)


class Ownership:
    """Maps a task id to its ``Owned`` entry; ids being deleted take no new owner."""

    def __init__(self) -> None:
        self._owned: dict[UUID, Owned] = {}
        #: Task ids being deleted, with how many deletions of each are under way.
        self._closed: dict[UUID, int] = {}

    def __len__(self) -> int:
        return len(self._owned)

    def __contains__(self, task_id: UUID) -> bool:
        return task_id in self._owned

    def get(self, task_id: UUID) -> Owned | None:
        return self._owned.get(task_id)

    def entries(self) -> list[Owned]:
        return list(self._owned.values())

    def claim(self, task_id: UUID) -> Owned | None:
        """A new entry for ``task_id``; None when it is owned already or being deleted."""
        if task_id in self._owned or task_id in self._closed:
            return None
        owned = self._owned[task_id] = Owned(task_id)
        return owned

    def release(self, owned: Owned) -> None:
        if self._owned.get(owned.task_id) is owned:
            del self._owned[owned.task_id]

    def closing(self, task_id: UUID) -> bool:
        return task_id in self._closed

    def close(self, task_id: UUID) -> None:
        """Refuse new owners for ``task_id`` (its rows are about to go) until ``reopen``."""
        self._closed[task_id] = self._closed.get(task_id, 0) + 1

    def reopen(self, task_id: UUID) -> None:
        left = self._closed.pop(task_id, 1) - 1
        if left:
            self._closed[task_id] = left
