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
from supervisor.events import Event, EventType
from supervisor.lifecycle import Status, is_terminal
from supervisor.messages import Subscription
from supervisor.supervisor import Supervisor


def ends_stream(event: Event) -> bool:
    return event.type is EventType.STATUS and is_terminal(event.status)


@dataclass
class TaskFeed:
    """Events after ``after``, in order; ends after the terminal event or when the actor stops."""

    after: int
    replay: list[Event]
    live: Subscription | None
    #: The task had ended when the feed was opened. A live task can have no actor for
    #: a moment (restarting after a crash or a database outage, or the service is
    #: stopping): its feed ends after the replay and the client comes back later.
    ended: bool = False

    @property
    def exhausted(self) -> bool:
        """Nothing to send now or later: the task has ended and the client has seen it."""
        return not self.replay and self.live is None and self.ended

    async def events(self) -> AsyncGenerator[Event]:
        last = self.after
        for event in self.replay:
            yield event
            last = event.seq
            if ends_stream(event):
                return
        if self.live is None:
            return
        async with self.live.events as live:
            async for event in live:
                if event.seq <= last:
                    continue
                yield event
                last = event.seq
                if ends_stream(event):
                    return

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.events.aclose()


async def open_feed(
    store: TaskStore, supervisor: Supervisor, task_id: UUID, after: int, *, status: Status
) -> TaskFeed:
    """Subscribe first, then read the journal up to the subscription's seq.

    ``status`` is the task's status read before subscribing: when it is terminal,
    no actor will ever publish for the task again.
    """
    live = await supervisor.subscribe(task_id)
    replay = await store.events_after(task_id, after)
    if live is not None:
        replay = [event for event in replay if event.seq <= live.seq]
    return TaskFeed(after, replay, live, ended=is_terminal(status))
