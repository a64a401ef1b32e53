"""Engine capacity: a FIFO of tasks waiting for one of N slots, with queue positions."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from ops.metrics import QUEUE_DEPTH
from supervisor.latch import Latch


class Ticket:
    """A place in the engine queue; release it in a ``finally``."""

    def __init__(self, slots: EngineSlots, position: int, owner: Hashable = None) -> None:
        self._slots = slots
        #: Who holds the ticket (a task id), so its place can be looked up.
        self.owner = owner
        self._granted = Latch()
        self._released = False
        #: Its place in the line when it joined: 0 when a slot was free, else 1, 2, 3...
        self.position = position

    @property
    def granted(self) -> bool:
        return self._granted.is_set()

    async def wait(self) -> None:
        """Wait until this ticket holds a slot."""
        await self._granted.wait()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._slots._release(self)

    def _grant(self) -> None:
        self._granted.set()


class EngineSlots:
    """At most ``capacity`` tasks do engine work at once; the rest wait in order."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._free = capacity
        self._waiting: deque[Ticket] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def enqueue(self, owner: Hashable = None) -> Ticket:
        """Join the queue; the ticket is granted at once when a slot is free."""
        if self._free and not self._waiting:
            self._free -= 1
            ticket = Ticket(self, 0, owner)
            ticket._grant()
        else:
            ticket = Ticket(self, len(self._waiting) + 1, owner)
            self._waiting.append(ticket)
            QUEUE_DEPTH.set(len(self._waiting))
        return ticket

    def position(self, owner: Hashable) -> int | None:
        """``owner``'s place in the line now (1 = next), or None when it is not waiting.

        A walk of the line: asked when somebody reads a queued task, not per event.
        """
        for place, ticket in enumerate(self._waiting, start=1):
            if ticket.owner == owner:
                return place
        return None

    def _release(self, ticket: Ticket) -> None:
        if not ticket.granted:
            self._waiting.remove(ticket)
        elif self._waiting:
            self._waiting.popleft()._grant()
        else:
            self._free += 1
            return
        QUEUE_DEPTH.set(len(self._waiting))
