"""Which live tasks this instance holds, under which fencing generation (no I/O here).

The journal fences every write with the generation held here and changes nothing here
when a write is refused: it says why (``Fenced``: the task was claimed by another
instance, or deleted; ``StaleWrite``: only the seq moved on). The supervisor decides:
fenced, it drops the claim and stops the actor without writing anything more; stale,
it starts the next actor from the journal. The end of a task's supervision lets its
claim go (and its live row, if the task did not end).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Fence:
    """What a write must match in ``live_tasks``: this owner, this generation."""

    owner: UUID
    generation: int


class Claims:
    """The tasks held by one instance, up to ``limit`` at once (a soft limit: admission
    and retry take a task here while there is room, claims fill the rest)."""

    def __init__(self, instance_id: UUID, limit: int) -> None:
        if limit < 1:
            raise ValueError("the claim limit must be at least 1")
        self.instance_id = instance_id
        self.limit = limit
        self._held: dict[UUID, int] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, task_id: UUID) -> bool:
        return task_id in self._held

    @property
    def room(self) -> int:
        return max(0, self.limit - len(self._held))

    def held(self) -> list[UUID]:
        return list(self._held)

    def fence(self, task_id: UUID) -> Fence | None:
        """The fence of a held task; None when this instance does not hold it."""
        generation = self._held.get(task_id)
        return None if generation is None else Fence(self.instance_id, generation)

    def new_owner(self) -> UUID | None:
        """Who runs a task admitted (or retried) here: this instance while it has room,
        else nobody yet (it waits for the first instance with room to claim it)."""
        return self.instance_id if self.room else None

    def hold(self, task_id: UUID, generation: int) -> None:
        self._held[task_id] = generation

    def drop(self, task_id: UUID) -> bool:
        """Forget a task (it ended, or it is no longer ours); True if it was held."""
        return self._held.pop(task_id, None) is not None

    def clear(self, new_id: UUID) -> list[UUID]:
        """Forget every task and take a new identity (this instance was presumed dead)."""
        lost = list(self._held)
        self._held.clear()
        self.instance_id = new_id
        return lost
