"""Engine capacity: a FIFO of tasks waiting for one of N slots, with queue positions."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from itertools import islice

from ops.metrics import QUEUE_DEPTH
from supervisor.latch import Latch

#: Told a waiting ticket's new place when the line moves; must neither block nor raise.
Moved = Callable[[int], None]


class Ticket:
    """A place in the engine queue; release it in a ``finally``."""

    def __init__(self, slots: EngineSlots, position: int, owner: Hashable = None) -> None:
        self._slots = slots
        #: Who holds the ticket (a task id), so its place can be looked up.
        self.owner = owner
        self._granted = Latch()
        self._released = False
        #: Its place now: 0 once it holds a slot, else 1 (next), 2, 3... kept current as
        #: the line moves, so that every reader (an event, a GET) tells the same place.
        self.position = position
        #: Called with each new place while it waits (not on the grant: that is news of
        #: its own, which the task's status tells).
        self.on_move: Moved | None = None

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
        #: Each owner's current ticket, for ``position`` without a walk of the line.
        self._by_owner: dict[Hashable, Ticket] = {}

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
        if owner is not None:
            self._by_owner[owner] = ticket
        return ticket

    def position(self, owner: Hashable) -> int | None:
        """``owner``'s place now: 0 when it holds a slot, 1 = next, 2, 3... while it
        waits; None when it has no ticket."""
        ticket = self._by_owner.get(owner)
        return None if ticket is None else ticket.position

    def _release(self, ticket: Ticket) -> None:
        if self._by_owner.get(ticket.owner) is ticket:
            del self._by_owner[ticket.owner]
        if not ticket.granted:
            left_from = ticket.position - 1
            self._waiting.remove(ticket)
        elif self._waiting:
            left_from = 0
            head = self._waiting.popleft()
            head.position = 0
            head._grant()
        else:
            self._free += 1
            return
        QUEUE_DEPTH.set(len(self._waiting))
        self._moved_up(left_from)

    def _moved_up(self, start: int) -> None:
        """Renumber the tickets from index ``start`` on (one left ahead of them) and tell
        each its new place: one walk per departure, however many are watched."""
        for index, behind in enumerate(islice(self._waiting, start, None), start=start):
            behind.position = index + 1
            if behind.on_move is not None:
                behind.on_move(behind.position)
