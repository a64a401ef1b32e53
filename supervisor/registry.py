"""Who runs which task: the one place that knows.

Today every live task's actor is in this process. When several instances
share a database, ownership moves into the database (a claimed-by column
and ``Journal.runnable`` returning only this instance's claims) and lookups
of foreign tasks go through PostgreSQL; callers keep using this registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from anyio.streams.memory import MemoryObjectSendStream

from supervisor.latch import Latch
from supervisor.messages import Message


@dataclass(eq=False)
class ActorHandle:
    """How to reach a running actor, and how to learn that it has ended."""

    task_id: UUID
    mailbox: MemoryObjectSendStream[Message]
    ended: Latch = field(default_factory=Latch)


class Registry:
    """Maps a task id to the handle of the actor that runs it here."""

    def __init__(self) -> None:
        self._actors: dict[UUID, ActorHandle] = {}

    def __len__(self) -> int:
        return len(self._actors)

    def __contains__(self, task_id: UUID) -> bool:
        return task_id in self._actors

    def get(self, task_id: UUID) -> ActorHandle | None:
        return self._actors.get(task_id)

    def handles(self) -> list[ActorHandle]:
        return list(self._actors.values())

    def register(self, handle: ActorHandle) -> None:
        if handle.task_id in self._actors:
            raise RuntimeError(f"task {handle.task_id} already has an actor")
        self._actors[handle.task_id] = handle

    def unregister(self, handle: ActorHandle) -> None:
        if self._actors.get(handle.task_id) is handle:
            del self._actors[handle.task_id]
