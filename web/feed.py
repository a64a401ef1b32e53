"""A task's events for one client: the journal after Last-Event-ID, then the actor's live ones.

The subscription is taken before the journal is read; the actor answers it
with the seq it has broadcast so far, so replayed and live events meet at
exactly that seq: no gap and no duplicate. After the replay no query runs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from uuid import UUID

from store.tasks import TaskStore
from supervisor.door import TaskDoor
from supervisor.events import Broadcast, Event, EventType, QueuePosition
from supervisor.lifecycle import Status, is_terminal
from supervisor.messages import Subscription


def is_terminal_event(event: Event) -> bool:
    return event.type is EventType.STATUS and is_terminal(event.status)


def current_end(replay: list[Event]) -> int | None:
    """The seq of the task's current terminal event in ``replay``, if it has one.

    Only the last status event counts: a retried task has the terminal events of its
    earlier attempts in its journal, and those are passed through like any other.
    """
    for event in reversed(replay):
        if event.type is EventType.STATUS:
            return event.seq if is_terminal(event.status) else None
    return None


@dataclass
class TaskFeed:
    """Events after ``after``, in order; ends after the current terminal event, when the
    actor stops, or when the task is deleted (``deleted`` then says so)."""

    after: int
    replay: list[Event]
    live: Subscription | None
    #: The task had ended when the feed was opened. A live task can have no actor for
    #: a moment (the service is stopping): its feed ends after the replay and the
    #: client comes back later.
    ended: bool = False
    #: The client's position is beyond the journal's end (a Last-Event-ID from nowhere):
    #: the next terminal event, however old, ends the feed.
    past_end: bool = False

    @property
    def exhausted(self) -> bool:
        """Nothing to send now or later: the task has ended and the client has seen it."""
        return not self.replay and self.live is None and self.ended

    @property
    def follows_actor(self) -> bool:
        """The live events come from the task's actor here (not from the cluster, whose
        feed can start before the task's end)."""
        return self.live is not None and self.live.seq is not None

    @property
    def deleted(self) -> bool:
        """The live events ended because the task was deleted."""
        return self.live is not None and self.live.deleted

    async def events(self) -> AsyncGenerator[Broadcast]:
        """The events in order; a ``QueuePosition`` (no seq: never replayed) wherever the
        waiting task's place moved."""
        last = self.after
        # Without an actor's feed (none, or the cluster's), the replay's terminal event
        # is the end.
        end = None if self.follows_actor else current_end(self.replay)
        for event in self.replay:
            yield event
            last = event.seq
            if event.seq == end:
                return
        if self.live is None or end is not None:
            return
        async with self.live.events as live:
            async for item in live:
                if isinstance(item, QueuePosition):
                    yield item
                    continue
                if item.seq <= last:
                    # Seen already. Only a client past the end stops at it: otherwise
                    # it is an earlier attempt's end (a retried task), not this one's.
                    if self.past_end and is_terminal_event(item):
                        return
                    continue
                yield item
                last = item.seq
                if is_terminal_event(item):
                    return

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.events.aclose()


async def open_feed(
    store: TaskStore, door: TaskDoor, task_id: UUID, after: int, *, status: Status
) -> TaskFeed:
    """Subscribe first, then read the journal up to the subscription's seq.

    ``status`` is the task's status read before subscribing: when it is terminal,
    no actor will ever publish for the task again (unless it is retried, and then
    its new actor is found here).
    """
    live = await door.follow(task_id, anywhere=not is_terminal(status), after=after)
    past_end = False
    try:
        replay = await store.events_after(task_id, after)
        if live is not None and live.seq is None and not replay and after > 0:
            # Followed through the cluster with nothing to replay: at the end, or past it?
            past_end = not await store.events_after(task_id, after - 1)
    except BaseException:
        if live is not None:
            await live.events.aclose()
        raise
    if live is not None and live.seq is not None:
        replay = [event for event in replay if event.seq <= live.seq]
    return TaskFeed(after, replay, live, ended=is_terminal(status), past_end=past_end)
